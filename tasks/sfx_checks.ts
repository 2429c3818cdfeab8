/**
 * Checks that a built self-extracting loam file must pass on every target, shared by the
 * shipped-file tests (the x86_64 file) and `deno task smoke:arm64` (the aarch64 file under
 * qemu-user with binfmt), so both hold the file to the same test: a first extraction killed
 * with -9 is recovered by the next run, and a truncated copy is refused in one line before
 * anything is extracted. The checks return what went wrong as sentences (empty: passed).
 * @module
 */
import { join } from "node:path";
import { sleep } from "../src/system/sleep.ts";

/** What one finished run of the file said. */
export interface FileRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * How the file runs: with only PATH=/usr/bin:/bin, HOME, LOAM_RUNTIME_DIR and `env`, so nothing
 * of the caller's environment (a Deno, its caches) can make a broken file look fine.
 */
export interface FileEnv {
  home: string;
  runtimeDir: string;
  /** More variables: QEMU_LD_PREFIX and QEMU_CPU for a file of another architecture. */
  env?: Record<string, string>;
  /** How long one run (or the wait for an extraction to start) may take; default 240 s. */
  timeoutMs?: number;
}

const HASH_DIR = /^[0-9a-f]{64}$/;

function fileCommand(
  file: string,
  args: string[],
  where: FileEnv,
  stdio: "piped" | "null",
  signal?: AbortSignal,
): Deno.Command {
  // through sh, as a user's shell would: the file's header is a POSIX sh script
  return new Deno.Command("sh", {
    args: [file, ...args],
    clearEnv: true,
    env: {
      PATH: "/usr/bin:/bin",
      HOME: where.home,
      LOAM_RUNTIME_DIR: where.runtimeDir,
      ...where.env,
    },
    stdin: "null",
    stdout: stdio,
    stderr: stdio,
    signal,
  });
}

const timeoutOf = (where: FileEnv) => where.timeoutMs ?? 240_000;

/** Runs the file to completion; throws when it is still running after the timeout. */
export async function runFile(file: string, args: string[], where: FileEnv): Promise<FileRun> {
  const signal = AbortSignal.timeout(timeoutOf(where));
  const out = await fileCommand(file, args, where, "piped", signal).output();
  if (signal.aborted) {
    throw new Error(`sh ${file} ${args.join(" ")}: still running after ${timeoutOf(where)} ms`);
  }
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

async function names(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
}

/**
 * Starts `version` on an empty `where.runtimeDir`, kills it with -9 once its `.extract-*` temp
 * directory appears, then runs `version --verify`: it must exit 0, name `target`, say
 * `payload verified` and leave exactly one extraction (a 64-hex directory). `recoveryMs` is how
 * long that second run took (a fresh extraction and test start).
 */
export async function killedExtractionProblems(
  file: string,
  target: string,
  where: FileEnv,
): Promise<{ problems: string[]; recoveryMs: number }> {
  await Deno.mkdir(where.runtimeDir, { recursive: true });
  const signal = AbortSignal.timeout(timeoutOf(where));
  const child = fileCommand(file, ["version"], where, "null", signal).spawn();
  let exited = false;
  const status = child.status.finally(() => exited = true);
  for (;;) {
    if ((await names(where.runtimeDir)).some((n) => n.startsWith(".extract-"))) break;
    if (exited || signal.aborted) {
      await status;
      return {
        problems: [
          `the first run ${exited && !signal.aborted ? "ended" : "ran on"} without a .extract-* ` +
          `entry appearing in ${where.runtimeDir} (waited up to ${timeoutOf(where)} ms)`,
        ],
        recoveryMs: 0,
      };
    }
    await sleep(20);
  }
  child.kill("SIGKILL");
  await status;

  const started = performance.now();
  const again = await runFile(file, ["version", "--verify"], where);
  const recoveryMs = performance.now() - started;
  const problems: string[] = [];
  if (again.code !== 0) {
    problems.push(`after kill -9, version --verify exited ${again.code}: ${again.stderr.trim()}`);
  }
  const said = new RegExp(`^loam \\S+ \\(sfx, ${target}, deno [\\d.]+, payload sha256:`);
  if (!said.test(again.stdout)) {
    problems.push(`after kill -9, version said ${JSON.stringify(again.stdout)}, not ${said}`);
  }
  if (!again.stdout.includes("payload verified")) {
    problems.push("after kill -9, version --verify did not say payload verified");
  }
  if ((await extractions(where.runtimeDir)).length !== 1) {
    const entries = (await names(where.runtimeDir)).join(" ");
    problems.push(`after kill -9, the runtime dir holds [${entries}], not one extraction`);
  }
  return { problems, recoveryMs };
}

/**
 * Writes `copy`, the file without its last 4096 bytes, and runs `version` on it: it must exit 1
 * with one stderr line saying the payload is truncated (checked before anything is extracted).
 */
export async function truncatedCopyProblems(
  file: string,
  copy: string,
  where: FileEnv,
): Promise<string[]> {
  const bytes = await Deno.readFile(file);
  await Deno.writeFile(copy, bytes.subarray(0, bytes.length - 4096), { mode: 0o755 });
  const run = await runFile(copy, ["version"], where);
  const problems: string[] = [];
  if (run.code !== 1) problems.push(`the truncated copy exited ${run.code}, not 1`);
  const lines = run.stderr.trim().split("\n");
  const damaged = /is damaged: payload is \d+ bytes, expected \d+ \(truncated/;
  if (lines.length !== 1 || !damaged.test(lines[0]!)) {
    problems.push(`the truncated copy said ${JSON.stringify(run.stderr)}, not one line ${damaged}`);
  }
  return problems;
}

/** The extraction directories (64-hex names, one per payload) in `runtimeDir`, as paths. */
export async function extractions(runtimeDir: string): Promise<string[]> {
  return (await names(runtimeDir)).filter((n) => HASH_DIR.test(n)).map((n) => join(runtimeDir, n));
}
