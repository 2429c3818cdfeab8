/**
 * The agent's Deno permissions, in one place: the flags of the `loam` task in deno.json, which
 * `deno task start` runs with, `deno task build` compiles into the binary, and the end-to-end
 * tests start every agent with.
 * @module
 */
import denoConfig from "../deno.json" with { type: "json" };

/** The permission flags of the `loam` task (between `deno run` and `main.ts`). */
export function agentPermissions(): string[] {
  const words = denoConfig.tasks.loam.split(/\s+/);
  const flags = words.slice(words.indexOf("run") + 1, words.indexOf("main.ts"));
  if (flags.length === 0 || flags.some((f) => !f.startsWith("--allow-"))) {
    throw new Error(`deno.json's loam task has unexpected flags: ${flags.join(" ")}`);
  }
  if (flags.includes("-A") || flags.includes("--allow-all")) {
    throw new Error("deno.json's loam task must name its permissions, not allow all");
  }
  return flags;
}
