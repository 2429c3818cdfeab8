/**
 * Fuzz family "model files": corrupt ONNX and GGUF files loaded by the agent's own adapters in a
 * child process (tasks/fuzz_model_loader.ts), so that native code taking the process down is
 * seen and counted as a crash of that file rather than ending the run; and corrupt WASM modules
 * compiled as the WASM runner compiles them.
 * @module
 */
import fc from "fast-check";
import { agentFlags } from "./permissions.ts";
import { buildTinyGguf } from "./gen_tiny_gguf.ts";
import { tinyOnnxModel } from "../tests/fixtures/tiny_onnx.ts";
import { describe, draw, mutatedBytes, randomBytes } from "./fuzz_inputs.ts";
import { FamilyTally, judge, type Outcome, outcomeOfFailure } from "./fuzz_tally.ts";

const LOADER = new URL("./fuzz_model_loader.ts", import.meta.url).pathname;
const WASM = new URL("../tests/fixtures/wasm/hello.wasm", import.meta.url).pathname;

type ModelType = "onnx_model" | "gguf_model";

/** Loads `files` in child processes, starting a new one after each that dies. */
async function loadAll(
  dir: string,
  files: { path: string; type: ModelType }[],
): Promise<Outcome[]> {
  const list = `${dir}/list.json`;
  await Deno.writeTextFile(list, JSON.stringify(files));
  const outcomes: Outcome[] = [];
  while (outcomes.length < files.length) {
    const child = new Deno.Command("deno", {
      // the agent's own permissions: node-llama-cpp tests its binding in a child process
      args: [
        "run",
        "--quiet",
        ...agentFlags(),
        LOADER,
        list,
        String(outcomes.length),
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    const out = await child.output();
    clearTimeout(timer);
    for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
      if (!line.startsWith("{")) continue;
      const answer = JSON.parse(line) as { ok?: true; error?: string; name?: string };
      outcomes.push(
        answer.ok
          ? { kind: "accepted" }
          : outcomeOfFailure(answer.name ?? "Error", answer.error ?? ""),
      );
    }
    if (outcomes.length < files.length && !out.success) {
      const stderr = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-2).join(" ");
      outcomes.push({
        kind: "crash",
        what: `the loading process died (${out.signal ?? `exit ${out.code}`}): ${
          stderr.slice(0, 200)
        }`,
      });
    } else if (outcomes.length < files.length) {
      throw new Error("the model loader stopped early without failing");
    }
  }
  return outcomes;
}

/** Runs the family; returns its tallies (ONNX and GGUF loads, WASM compiles). */
export async function fuzzModels(dir: string, count: number, seed: number): Promise<FamilyTally[]> {
  const onnxTally = new FamilyTally("ONNX files (onnx_model adapter)");
  const ggufTally = new FamilyTally("GGUF files (gguf_model adapter)");
  const wasmTally = new FamilyTally("WASM modules (compile)");
  const third = Math.max(1, Math.round(count / 3));
  const onnx = draw(
    fc.oneof({ arbitrary: mutatedBytes(tinyOnnxModel()), weight: 5 }, randomBytes()),
    third,
    seed,
  );
  const gguf = draw(
    fc.oneof({ arbitrary: mutatedBytes(buildTinyGguf()), weight: 5 }, randomBytes()),
    third,
    seed,
  );
  const files: { path: string; type: ModelType; bytes: Uint8Array }[] = [
    ...onnx.map((bytes, i) => ({ path: `${dir}/m${i}.onnx`, type: "onnx_model" as const, bytes })),
    ...gguf.map((bytes, i) => ({ path: `${dir}/m${i}.gguf`, type: "gguf_model" as const, bytes })),
  ];
  for (const f of files) await Deno.writeFile(f.path, f.bytes);
  const outcomes = await loadAll(dir, files.map(({ path, type }) => ({ path, type })));
  for (const [i, f] of files.entries()) {
    (f.type === "onnx_model" ? onnxTally : ggufTally).record(outcomes[i]!, () => describe(f.bytes));
  }
  const valid = await Deno.readFile(WASM);
  for (const bytes of draw(fc.oneof(mutatedBytes(valid), randomBytes()), third, seed)) {
    wasmTally.record(
      await judge(() => WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>)),
      () => describe(bytes),
    );
  }
  return [onnxTally, ggufTally, wasmTally];
}
