import assert from "node:assert/strict";
import { apiRoutes, type ApiState } from "./routes.ts";
import { HttpError } from "./http_error.ts";
import { JobRejected } from "../runtimes/job_queue.ts";
import type { OnnxInference } from "../runtimes/onnx_model.ts";

/** The infer route's handler over a stub state with one ONNX instance in `model`'s condition. */
function inferRoute(model: OnnxInference | "loading") {
  const state = {
    instances: () => [{
      instance_id: "onnx-a",
      directive_id: "a",
      adapter: "onnx_model",
      state: "loaded",
      provider: "cpu",
      started_at: null,
    }],
    onnxModel: () => model,
    maxInputBytes: 1024 * 1024,
  } as unknown as ApiState;
  const route = apiRoutes(state).find((r) => r.path === "/v1/instances/:id/infer")!;
  return (body: unknown) => {
    const req = new Request("http://x/v1/instances/onnx-a/infer", {
      method: "POST",
      body: JSON.stringify(body),
    });
    return route.handler({ req, url: new URL(req.url), params: { id: "onnx-a" } });
  };
}

async function httpError(work: () => Response | Promise<Response>): Promise<HttpError> {
  try {
    await work();
  } catch (err) {
    if (err instanceof HttpError) return err;
    throw err;
  }
  throw new Error("expected an HttpError");
}

const x = { x: { dims: [1], type: "float32", data: [1] } };

Deno.test("an instance still loading answers 503 with Retry-After", async () => {
  const err = await httpError(() => inferRoute("loading")({ inputs: x }));
  assert.equal(err.status, 503);
  assert.equal(err.headers["retry-after"], "1");
});

Deno.test("a full queue answers 429 with Retry-After; a timed-out job 504", async () => {
  const refusing = (rejection: JobRejected): OnnxInference => ({
    inputs: [{ name: "x", type: "float32", shape: [1] }],
    outputs: [],
    provider: "cpu",
    run: () => Promise.reject(rejection),
  });
  const full = await httpError(() =>
    inferRoute(refusing(new JobRejected("queue_full", "64 waiting", 7)))({ inputs: x })
  );
  assert.equal(full.status, 429);
  assert.equal(full.headers["retry-after"], "7");
  const late = await httpError(() =>
    inferRoute(refusing(new JobRejected("timeout", "too slow")))({ inputs: x })
  );
  assert.equal(late.status, 504);
});
