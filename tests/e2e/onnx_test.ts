import assert from "node:assert/strict";
import { type AgentProcess, startAgent, tempDir } from "./harness.ts";
import { eventually } from "./mesh_helpers.ts";
import { sha256Hex, startBlobServer } from "../fixtures/blob_server.ts";
import { tinyOnnxModel } from "../../src/runtimes/tiny_onnx_model.ts";

/** Deploys an ONNX model from `url` and waits until the deployment settles. */
async function deployModel(
  agent: AgentProcess,
  id: string,
  url: string,
  body: Uint8Array,
  providers: string[],
) {
  const res = await agent.request("/v1/deployments", {
    method: "POST",
    token: agent.adminToken(),
    body: JSON.stringify({
      directive_id: id,
      scope: { type: "broadcast" },
      artifact: {
        blob_hash: `sha256:${sha256Hex(body)}`,
        size_bytes: body.length,
        urls: [url],
        artifact_type: { type: "onnx_model", execution_providers: providers },
      },
    }),
  });
  assert.equal(res.status, 202, await res.text());
  return await eventually(`${id} settled`, async () => {
    const r = await (await agent.request(`/v1/deployments/${id}`, { token: agent.adminToken() }))
      .json();
    return ["active", "failed"].includes(r.state) ? r : undefined;
  });
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
    const record = await deployModel(agent, "tiny-1", http.url("/tiny.onnx"), model, [
      "CUDAExecutionProvider",
      "CPUExecutionProvider",
    ]);
    assert.equal(record.state, "active", record.error_message);
    assert.equal(record.instance_id, "onnx-tiny-1");

    const reader = await token(agent, "reader", ["status:read"]);
    const infer = await token(agent, "client", ["infer:run"]);
    const instance = await (await agent.request("/v1/instances/onnx-tiny-1", { token: reader }))
      .json();
    assert.equal(instance.adapter, "onnx_model");
    assert.equal(instance.state, "loaded");
    assert.equal(instance.provider, "cpu");
    assert.equal(instance.skipped_providers[0].provider, "cuda");
    assert.ok(instance.skipped_providers[0].reason.length > 0);
    assert.deepEqual(instance.inputs, [{ name: "x", type: "float32", shape: ["N", 4] }]);
    assert.deepEqual(instance.outputs.map((o: { name: string }) => o.name), ["y", "sum"]);

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
    assert.deepEqual(Array.from(new Float32Array(await raw.arrayBuffer())), [3, 5, 7, 9]);

    // multipart: a part per input, dims in a field
    const form = new FormData();
    form.set("x", new Blob([Float32Array.from([1, 1, 1, 1])]));
    form.set("x.dims", "1,4");
    const multipart = await agent.request(url, { method: "POST", token: infer, body: form });
    assert.equal(multipart.status, 200);
    assert.deepEqual((await multipart.json()).outputs.sum.data, [12]);

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
    assert.match(metrics, /loam_jobs_total\{instance="onnx-tiny-1",outcome="completed"\} 3/);
    assert.match(metrics, /loam_inference_latency_seconds_count\{instance="onnx-tiny-1"\} 3/);

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
