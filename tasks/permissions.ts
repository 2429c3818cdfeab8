/**
 * The agent's Deno flags, in one place: the flags of the `loam` task in deno.json (its
 * permissions and V8 memory settings), which `deno task start` runs with, `deno task build`
 * compiles into the binary, and the end-to-end tests start every agent with.
 * @module
 */
import denoConfig from "../deno.json" with { type: "json" };

/** The flags of the `loam` task (between `deno run` and `main.ts`): permissions and V8 flags. */
export function agentFlags(): string[] {
  const words = denoConfig.tasks.loam.split(/\s+/);
  const flags = words.slice(words.indexOf("run") + 1, words.indexOf("main.ts"));
  const expected = (f: string) => f.startsWith("--allow-") || f.startsWith("--v8-flags=");
  if (
    flags.length === 0 || !flags.some((f) => f.startsWith("--allow-")) || !flags.every(expected)
  ) {
    throw new Error(`deno.json's loam task has unexpected flags: ${flags.join(" ")}`);
  }
  if (flags.includes("-A") || flags.includes("--allow-all")) {
    throw new Error("deno.json's loam task must name its permissions, not allow all");
  }
  return flags;
}
