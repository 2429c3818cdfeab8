/**
 * `deno task build [--target T] [--cuda] [--download] [--out-dir DIR]`: one self-extracting
 * binary per target (`dist/loam-<target>`), compiled with the agent's permission list and only
 * the target's npm binaries, then `dist/SHA256SUMS` (`sha256sum -c` format). Stops with exit 3
 * before writing anything when the Deno runtime base (denort) for a target is not at hand.
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import {
  compileArgs,
  denoDir,
  denortCachePath,
  excludedPaths,
  missingDenortMessage,
  type Target,
  TARGETS,
} from "./compile_plan.ts";
import { pathExists } from "./path_exists.ts";

const EXIT_NO_DENORT = 3;

async function sha256(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Bytes under `path` (a file or a directory tree). */
function sizeOf(path: string): number {
  const info = Deno.statSync(path);
  if (!info.isDirectory) return info.size;
  let total = 0;
  for (const entry of Deno.readDirSync(path)) total += sizeOf(join(path, entry.name));
  return total;
}

/** The biggest npm packages that go into the binary (what makes it large). */
function largestParts(dir: string, excludes: string[]): [string, number][] {
  const registry = join(dir, "npm", "registry.npmjs.org");
  const parts: [string, number][] = [];
  for (const pkg of ["onnxruntime-node", "node-llama-cpp", "@node-llama-cpp"]) {
    const root = join(registry, pkg);
    try {
      for (const entry of Deno.readDirSync(root)) {
        if (!entry.isDirectory) continue;
        const path = join(root, entry.name);
        if (excludes.some((e) => e === path || path.startsWith(e + "/"))) continue;
        const kept = sizeOf(path) -
          excludes.filter((e) => e.startsWith(path + "/")).reduce((sum, e) => sum + sizeOf(e), 0);
        parts.push([`${pkg}/${entry.name}`, kept]);
      }
    } catch {
      // not cached
    }
  }
  return parts.filter(([, bytes]) => bytes > 64 * 1024).sort((a, b) => b[1] - a[1]).slice(0, 5);
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    target: { type: "string" },
    cuda: { type: "boolean" },
    download: { type: "boolean" },
    "out-dir": { type: "string", default: "dist" },
  },
  strict: true,
});
if (values.target !== undefined && !(TARGETS as readonly string[]).includes(values.target)) {
  console.error(`deno task build: --target must be one of ${TARGETS.join(", ")}`);
  Deno.exit(2);
}
const targets: Target[] = values.target ? [values.target as Target] : [...TARGETS];
const env = { DENO_DIR: Deno.env.get("DENO_DIR"), HOME: Deno.env.get("HOME") };
const dir = denoDir(env);
const denortBin = Deno.env.get("DENORT_BIN");

// every target's base runtime must be at hand before anything is written
if (!values.download) {
  for (const target of targets) {
    const fromEnv = denortBin !== undefined && targets.length === 1;
    const present = fromEnv
      ? await Deno.stat(denortBin).then(() => true, () => false)
      : await Deno.stat(denortCachePath(dir, target)).then(() => true, () => false);
    if (!present) {
      console.error(missingDenortMessage(dir, target));
      Deno.exit(EXIT_NO_DENORT);
    }
  }
}

const outDir = values["out-dir"]!;
await Deno.mkdir(outDir, { recursive: true });
const sums: string[] = [];
for (const target of targets) {
  const output = join(outDir, `loam-${target}`);
  const partial = join(outDir, `.loam-${target}.partial`);
  const excludes = excludedPaths(dir, target, values.cuda ?? false);
  const child = new Deno.Command("deno", {
    args: compileArgs(target, partial, excludes),
    env: targets.length === 1 && denortBin ? { DENORT_BIN: denortBin } : {},
    stdout: "inherit",
    stderr: "inherit",
  });
  const status = await child.output();
  if (!status.success) {
    await Deno.remove(partial).catch(() => {});
    console.error(`deno task build: deno compile failed for ${target}`);
    Deno.exit(1);
  }
  await Deno.rename(partial, output);
  sums.push(`${await sha256(output)}  loam-${target}`);
  console.log(`${output}: ${mib(Deno.statSync(output).size)}`);
  for (const [part, bytes] of largestParts(dir, excludes)) console.log(`  ${part}: ${mib(bytes)}`);
}
const sumsPath = join(outDir, "SHA256SUMS");
// keep the lines of targets not rebuilt this time, while their binaries are still there
const kept = (await Deno.readTextFile(sumsPath).catch(() => "")).split("\n").filter((line) => {
  const name = line.split(/\s+/)[1];
  return name !== undefined && !sums.some((s) => s.endsWith(`  ${name}`)) &&
    pathExists(join(outDir, name));
});
sums.push(...kept);
await Deno.writeTextFile(`${sumsPath}.tmp`, sums.join("\n") + "\n");
await Deno.rename(`${sumsPath}.tmp`, sumsPath);
console.log(`${sumsPath}: check with (cd ${outDir} && sha256sum -c SHA256SUMS)`);
