/**
 * What `deno task build` does for one target, as data: where the Deno runtime base (denort)
 * must come from, and the exact `deno compile` argument list. Kept apart from the build's side
 * effects so tests check both for each target.
 * @module
 */
import { join } from "node:path";
import { agentFlags } from "./permissions.ts";

/** The targets loam ships for. */
export const TARGETS = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] as const;

/** A build target. */
export type Target = typeof TARGETS[number];

/** The file name a target's loam gets: `loam-x86_64-linux`, `loam-aarch64-linux`. */
export function fileNameFor(target: Target): string {
  return `loam-${target.split("-")[0]}-linux`;
}

/** Deno's cache directory (`$DENO_DIR`, else the Linux default). */
export function denoDir(env: { DENO_DIR?: string; HOME?: string }): string {
  return env.DENO_DIR ?? join(env.HOME ?? "/root", ".cache", "deno");
}

/** Where `deno compile` looks for the runtime base of `target` when DENORT_BIN is not set. */
export function denortCachePath(dir: string, target: Target): string {
  return join(dir, "dl", "release", `v${Deno.version.deno}`, `denort-${target}.zip`);
}

/** The message (exit 3) when no runtime base is at hand for `target`. */
export function missingDenortMessage(dir: string, target: Target): string {
  const path = denortCachePath(dir, target);
  return [
    `deno task build: no Deno runtime base (denort ${Deno.version.deno}) for ${target}.`,
    "deno compile would download it from Deno's servers, which this machine may not reach, so",
    "the build stops here. Provide it one of two ways and run the build again:",
    `  - DENORT_BIN=/path/to/denort   an unzipped denort ${Deno.version.deno} for ${target}`,
    `    (with --target ${target}: one base binary serves one target)`,
    `  - ${path}`,
    `    a zip with denort at its root, as Deno's release page names it: denort-${target}.zip`,
    "  or pass --download to let deno compile fetch it where the network allows.",
    "Nothing was written to dist/.",
  ].join("\n");
}

/** npm packages (or parts) for another platform or an unasked GPU variant, and dead weight. */
function foreignParts(target: Target, cuda: boolean): { pkg: string; sub?: string }[] {
  const arch = target.startsWith("x86_64") ? "x64" : "arm64";
  const llamaKeep = new Set([
    `linux-${arch}`,
    ...(cuda && arch === "x64" ? ["linux-x64-cuda", "linux-x64-cuda-ext"] : []),
  ]);
  const llamaAll = [
    "linux-x64",
    "linux-x64-cuda",
    "linux-x64-cuda-ext",
    "linux-x64-vulkan",
    "linux-arm64",
    "linux-armv7l",
    "linux-riscv64",
    "mac-arm64-metal",
    "mac-x64",
    "win-arm64",
    "win-x64",
    "win-x64-cuda",
    "win-x64-cuda-ext",
    "win-x64-vulkan",
  ];
  const ortSubdirs = ["darwin", "win32", `linux/${arch === "x64" ? "arm64" : "x64"}`];
  return [
    ...llamaAll.filter((p) => !llamaKeep.has(p)).map((p) => ({ pkg: `@node-llama-cpp/${p}` })),
    ...ortSubdirs.map((sub) => ({ pkg: "onnxruntime-node", sub: `bin/napi-v6/${sub}` })),
    // deno install ignores npm's libc field: the musl builds of reflink come along
    { pkg: "@reflink/reflink-linux-x64-musl" },
    { pkg: "@reflink/reflink-linux-arm64-musl" },
    // prom-client's dependency ships test samples on which deno compile 2.9.6 overflows its stack
    { pkg: "bintrees", sub: "test" },
  ];
}

/** The exact cache paths to leave out of the binary for `target` (only those that exist). */
export function excludedPaths(dir: string, target: Target, cuda: boolean): string[] {
  const registry = join(dir, "npm", "registry.npmjs.org");
  const paths: string[] = [];
  for (const { pkg, sub } of foreignParts(target, cuda)) {
    let versions: string[] = [];
    try {
      versions = [...Deno.readDirSync(join(registry, pkg))].filter((e) => e.isDirectory).map((e) =>
        e.name
      );
    } catch {
      continue; // not in the cache: nothing to leave out
    }
    for (const version of versions) {
      const path = join(registry, pkg, version, sub ?? "");
      try {
        Deno.statSync(path);
        paths.push(path.replace(/\/$/, ""));
      } catch {
        // this version has no such part
      }
    }
  }
  return paths.sort();
}

/** The `deno compile` arguments for `target`, writing `output`. */
export function compileArgs(target: Target, output: string, excludes: string[]): string[] {
  return [
    "compile",
    "--target",
    target,
    "--self-extracting",
    "--exclude-unused-npm",
    "--no-check",
    "--output",
    output,
    ...agentFlags(),
    ...excludes.flatMap((path) => ["--exclude", path]),
    "main.ts",
  ];
}
