/**
 * Child process of the "model files" fuzz family: `fuzz_model_loader.ts <list.json> <from>`
 * loads the files of the list (`[{path, type}]`) from index `from` with the agent's own adapters
 * (onnx_model, gguf_model), exactly as an activation does, and prints one JSON line per file:
 * `{"ok": true}` or `{"error": "..."}`. If native code takes the process down, the parent sees
 * it die before a file's line: that file crashed the agent's load path.
 * @module
 */
import { Registry } from "prom-client";
import { OnnxModelAdapter } from "../src/runtimes/onnx_model.ts";
import { GgufModelAdapter } from "../src/runtimes/gguf_model.ts";
import { createJobMetrics } from "../src/runtimes/job_metrics.ts";
import { createLogger } from "../src/system/logger.ts";
import type { DeploymentDirective } from "../src/protocol/directive.ts";
import { testDirective } from "../tests/fixtures/directive.ts";

const logger = createLogger({ level: "error", format: "json", write: () => {} });
const inference = {
  threads: 1,
  maxQueue: 1,
  timeoutMs: 10_000,
  metrics: createJobMetrics(new Registry()),
  logger,
};
const onnx = new OnnxModelAdapter(inference);
const gguf = new GgufModelAdapter({ ...inference, contextLength: 64, gpuLayers: 0, hasGpu: false });

function directive(id: string, type: "onnx_model" | "gguf_model"): DeploymentDirective {
  const artifactType = type === "onnx_model" ? { type } : { type, context_length: 64 };
  return testDirective(id, artifactType, { artifact: { name: id } });
}

const [listPath, from] = Deno.args;
const files = JSON.parse(await Deno.readTextFile(listPath!)) as {
  path: string;
  type: "onnx_model" | "gguf_model";
}[];
for (const [i, { path, type }] of files.entries()) {
  if (i < Number(from)) continue;
  const adapter = type === "onnx_model" ? onnx : gguf;
  let answer: unknown;
  try {
    const instance = await adapter.activate(
      directive(`m${i}`, type),
      path,
      new AbortController().signal,
    );
    await adapter.deactivate(instance.instance_id);
    answer = { ok: true };
  } catch (err) {
    answer = { error: (err as Error).message ?? String(err), name: (err as Error).name };
  }
  console.log(JSON.stringify(answer));
}
await onnx.stopAll();
await gguf.stopAll();
