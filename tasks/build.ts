/**
 * `deno task build [--target T] [--kind compile|sfx] [--cuda] [--version V] [--out-dir D]
 * [--download]`: one executable file per target, `<D>/loam-x86_64-linux` and
 * `<D>/loam-aarch64-linux`, then `<D>/SHA256SUMS` (`sha256sum -c` format).
 *
 * - `compile`: `deno compile --self-extracting` with the agent's permission list and only the
 *   target's npm binaries. It needs Deno's runtime base (denort) for the target: DENORT_BIN,
 *   the cache path, or `--download`.
 * - `sfx`: a POSIX sh header and a tar.gz payload (the npm Deno binary for the target, the
 *   bundled agent, the WASM runner, the target's addons; see sfx_payload.ts). It needs only
 *   the npm registry to build and sh, tar, gzip and sha256sum to run.
 *
 * Without `--kind`, compile is used when every target's denort is at hand, sfx otherwise; the
 * build says which and why.
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import denoConfig from "../deno.json" with { type: "json" };
import {
  compileArgs,
  denoDir,
  denortCachePath,
  excludedPaths,
  fileNameFor,
  missingDenortMessage,
  type Target,
  TARGETS,
} from "./compile_plan.ts";
import { pathExists } from "./path_exists.ts";
import { assemblePayload, sha256OfFile } from "./sfx_payload.ts";
import { packSfx } from "./sfx_pack.ts";

const EXIT_USAGE = 2;
const EXIT_NO_DENORT = 3;

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function usage(message: string): never {
  console.error(`deno task build: ${message}`);
  Deno.exit(EXIT_USAGE);
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    target: { type: "string" },
    kind: { type: "string" },
    cuda: { type: "boolean" },
    download: { type: "boolean" },
    version: { type: "string" },
    "out-dir": { type: "string", default: "dist" },
  },
  strict: true,
});
if (values.target !== undefined && !(TARGETS as readonly string[]).includes(values.target)) {
  usage(`--target must be one of ${TARGETS.join(", ")}`);
}
if (values.kind !== undefined && values.kind !== "compile" && values.kind !== "sfx") {
  usage("--kind must be compile or sfx");
}
const version = values.version ?? denoConfig.version;
if (!/^[A-Za-z0-9._+-]{1,64}$/.test(version)) {
  usage(`--version "${version}": use letters, digits, ".", "_", "+" or "-"`);
}
const targets: Target[] = values.target ? [values.target as Target] : [...TARGETS];
const env = { DENO_DIR: Deno.env.get("DENO_DIR"), HOME: Deno.env.get("HOME") };
const dir = denoDir(env);
const denortBin = Deno.env.get("DENORT_BIN");

/** Whether deno compile has a runtime base for `target` without downloading. */
function denortAtHand(target: Target): boolean {
  if (denortBin !== undefined && targets.length === 1) return pathExists(denortBin);
  return pathExists(denortCachePath(dir, target));
}

let kind = values.kind as "compile" | "sfx" | undefined;
if (kind === undefined) {
  const missing = targets.filter((t) => !values.download && !denortAtHand(t));
  kind = missing.length === 0 ? "compile" : "sfx";
  console.log(
    kind === "compile"
      ? "kind: compile (Deno's runtime base is at hand for every target)"
      : `kind: sfx (no Deno runtime base, denort, for ${missing.join(", ")}: ` +
        "a self-extracting file needs only the npm registry to build)",
  );
} else {
  console.log(`kind: ${kind} (asked for)`);
}
if (kind === "compile") {
  if (values.version !== undefined && values.version !== denoConfig.version) {
    usage("--version applies to --kind sfx; a compiled file reports deno.json's version");
  }
  if (!values.download) {
    for (const target of targets) {
      if (!denortAtHand(target)) {
        console.error(missingDenortMessage(dir, target));
        Deno.exit(EXIT_NO_DENORT);
      }
    }
  }
}

const outDir = values["out-dir"]!;
await Deno.mkdir(outDir, { recursive: true });
const cacheRoot = Deno.env.get("LOAM_BUILD_CACHE") ??
  join(Deno.env.get("XDG_CACHE_HOME") ?? join(env.HOME ?? "/root", ".cache"), "loam-build");
const project = new URL("..", import.meta.url).pathname;
const sums: string[] = [];
for (const target of targets) {
  const name = fileNameFor(target);
  const output = join(outDir, name);
  const started = performance.now();
  if (kind === "compile") {
    const partial = join(outDir, `.${name}.partial`);
    const excludes = excludedPaths(dir, target, values.cuda ?? false);
    const status = await new Deno.Command("deno", {
      args: compileArgs(target, partial, excludes),
      env: targets.length === 1 && denortBin ? { DENORT_BIN: denortBin } : {},
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (!status.success) {
      await Deno.remove(partial).catch(() => {});
      console.error(`deno task build: deno compile failed for ${target}`);
      Deno.exit(1);
    }
    await Deno.rename(partial, output);
  } else {
    const work = await Deno.makeTempDir({ prefix: `loam-build-${name}-` });
    try {
      const payload = await assemblePayload(work, {
        target,
        version,
        cuda: values.cuda ?? false,
        cacheRoot,
        project,
      });
      const packed = await packSfx(work, output, {
        version,
        target,
        denoVersion: payload.denoVersion,
      });
      console.log(
        `${output}: sfx, loam ${version}, deno ${payload.denoVersion}, payload sha256:${packed.payloadSha256}`,
      );
      for (const [part, bytes] of Object.entries(payload.parts)) {
        console.log(`  ${part}: ${mib(bytes)} unpacked`);
      }
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`${output}: ${mib(Deno.statSync(output).size)} (built in ${seconds} s)`);
  sums.push(`${await sha256OfFile(output)}  ${name}`);
}
const sumsPath = join(outDir, "SHA256SUMS");
// keep the lines of targets not rebuilt this time, while their files are still there
const kept = (await Deno.readTextFile(sumsPath).catch(() => "")).split("\n").filter((line) => {
  const name = line.split(/\s+/)[1];
  return name !== undefined && !sums.some((s) => s.endsWith(`  ${name}`)) &&
    pathExists(join(outDir, name));
});
sums.push(...kept);
await Deno.writeTextFile(`${sumsPath}.tmp`, sums.join("\n") + "\n");
await Deno.rename(`${sumsPath}.tmp`, sumsPath);
console.log(`${sumsPath}: check with (cd ${outDir} && sha256sum -c SHA256SUMS)`);
