/**
 * Runs one WASI preview1 module under Deno's built-in `node:wasi`, in its own `deno run`
 * process whose Deno permissions are the module's capabilities:
 *
 *   deno run --no-prompt --no-lock --cached-only --config=<repo>/deno.json
 *     --allow-read=<module>,<every preopen host dir> --allow-write=<every preopen host dir>[,/dev/null]
 *     [--v8-flags=--wasm-max-mem-pages=<N>] src/runtimes/wasm_runner.ts '<config JSON>'
 *
 * `new WASI()` demands read and write permission on every preopen, so read-only preopens are
 * granted write at launch and the runner revokes it before the module runs; their opens without
 * write intent have their requested rights narrowed (see {@link narrowReadOnlyOpen}) because
 * Deno asks for write permission whenever any mutating right is requested, and wasi-libc asks
 * for all of them even for `fopen(path, "r")`.
 *
 * Exit status: the module's own exit code (0-255; others become 1), or
 * {@link EXIT_TRAP} (70) when the module trapped or threw, {@link EXIT_LOAD} (71) when it could
 * not be read, compiled or instantiated (a memory over the page cap fails here), and
 * {@link EXIT_CONFIG} (78) for a bad config or permissions that do not match it. The runner's
 * own failures are one line on its stderr starting with `wasm_runner:`.
 * @module
 */
import { openSync } from "node:fs";
import process from "node:process";
import { WASI } from "node:wasi";
import { z } from "zod";

/** Exit status when the module trapped (e.g. `unreachable`, out-of-bounds) or the host threw. */
const EXIT_TRAP = 70;
/** Exit status when the module could not be read, compiled or instantiated. */
const EXIT_LOAD = 71;
/** Exit status when the config is invalid or the process's permissions do not match it. */
const EXIT_CONFIG = 78;

/** WASI errno ENOTCAPABLE, returned by the stubs of calls that were not granted. */
const ERRNO_NOTCAPABLE = 76;
/** path_open oflags that create or truncate. */
const OFLAGS_WRITE = 0x1 | 0x4 | 0x8; // CREAT | EXCL | TRUNC
const RIGHT_FD_WRITE = 1n << 6n;
/** Rights that cannot change anything: fd_read, seek, tell, advise, path_link_source, path_open,
 * readdir, readlink, path_filestat_get, fd_filestat_get, poll_fd_readwrite. */
const READ_ONLY_RIGHTS = [1n, 2n, 5n, 7n, 11n, 13n, 14n, 15n, 18n, 21n, 27n]
  .reduce((all, bit) => all | (1n << bit), 0n);

/** What the runner runs: all host paths absolute, all already allowed by the Deno flags. */
const WasmRunConfigSchema = z.strictObject({
  /** Host path of the `.wasm` file. */
  module: z.string().startsWith("/"),
  /** The guest's whole argv, argv[0] included. */
  args: z.array(z.string()).default([]),
  /** The guest's whole environment; the host environment is never passed through. */
  env: z.record(z.string().regex(/^[^=\0]+$/), z.string()).default({}),
  /** Guest path (e.g. `data`) to host directory and whether the guest may change it. */
  preopens: z.record(
    z.string().min(1),
    z.strictObject({ host: z.string().startsWith("/"), write: z.boolean() }),
  ).default({}),
  /** Whether the guest's fd 1 / fd 2 reach the runner's stdout / stderr (else /dev/null). */
  stdout: z.boolean().default(false),
  stderr: z.boolean().default(false),
  /** Whether clock_time_get / clock_res_get and random_get work (else they fail ENOTCAPABLE). */
  clock: z.boolean().default(false),
  random: z.boolean().default(false),
});

/** A validated runner config. */
export type WasmRunConfig = z.infer<typeof WasmRunConfigSchema>;

type WasiImport = Record<string, (...args: never[]) => unknown>;

/** Prints one diagnostic line on the runner's stderr and exits with `code`. */
function fail(code: number, what: string, err?: unknown): never {
  const detail = err === undefined ? "" : `: ${err instanceof Error ? err.message : String(err)}`;
  console.error(`wasm_runner: ${what}${detail}`.replaceAll("\n", " "));
  Deno.exit(code);
}

/**
 * An open with no write intent asks only for read rights, so that it needs only Deno read
 * permission; Deno's node:wasi checks the requested rights, not the open mode.
 */
function narrowReadOnlyOpen(imports: WasiImport): void {
  const pathOpen = imports.path_open as (...args: unknown[]) => number;
  imports.path_open = ((...args: unknown[]) => {
    const oflags = Number(args[4]);
    const base = BigInt(args[5] as bigint);
    if ((oflags & OFLAGS_WRITE) === 0 && (base & RIGHT_FD_WRITE) === 0n) {
      args[5] = base & READ_ONLY_RIGHTS;
    }
    return pathOpen(...args);
  }) as WasiImport[string];
}

/** Makes the calls of a capability that was not granted fail with ENOTCAPABLE. */
function deny(imports: WasiImport, names: string[]): void {
  for (const name of names) imports[name] = () => ERRNO_NOTCAPABLE;
}

/** Takes write permission back from read-only preopens and checks the result. */
async function settlePermissions(config: WasmRunConfig): Promise<void> {
  const preopens = Object.values(config.preopens);
  for (const { host, write } of preopens) {
    if (!write) await Deno.permissions.revoke({ name: "write", path: host });
  }
  for (const { host, write } of preopens) {
    const { state } = await Deno.permissions.query({ name: "write", path: host });
    if ((state === "granted") !== write) {
      fail(EXIT_CONFIG, `write permission for ${host} is ${state}, expected write=${write}`);
    }
  }
}

/** Runs the module `config` names and exits with its status. */
async function main(raw: string | undefined): Promise<never> {
  let config: WasmRunConfig;
  try {
    config = WasmRunConfigSchema.parse(JSON.parse(raw ?? ""));
  } catch (err) {
    fail(EXIT_CONFIG, "bad config", err instanceof z.ZodError ? z.prettifyError(err) : err);
  }
  // node:wasi emits an ExperimentalWarning on stderr; the guest's stderr is not ours to mix.
  process.removeAllListeners("warning");
  let wasi: WASI;
  try {
    const devNull = config.stdout && config.stderr ? -1 : openSync("/dev/null", "w");
    wasi = new WASI({
      version: "preview1",
      args: config.args,
      env: config.env,
      preopens: Object.fromEntries(
        Object.entries(config.preopens).map(([guest, { host }]) => [guest, host]),
      ),
      stdout: config.stdout ? 1 : devNull,
      stderr: config.stderr ? 2 : devNull,
      returnOnExit: true,
    });
  } catch (err) {
    fail(EXIT_CONFIG, "cannot set up WASI", err);
  }
  await settlePermissions(config);
  const imports = wasi.getImportObject() as { wasi_snapshot_preview1: WasiImport };
  const wasiImport = imports.wasi_snapshot_preview1;
  narrowReadOnlyOpen(wasiImport);
  // A hard link from a read-only preopen into a writable one would make the file writable.
  if (Object.values(config.preopens).some((p) => !p.write)) deny(wasiImport, ["path_link"]);
  if (!config.clock) deny(wasiImport, ["clock_time_get", "clock_res_get"]);
  if (!config.random) deny(wasiImport, ["random_get"]);
  let instance: WebAssembly.Instance;
  try {
    const module = await WebAssembly.compile(await Deno.readFile(config.module));
    instance = await WebAssembly.instantiate(module, imports);
  } catch (err) {
    fail(EXIT_LOAD, `cannot load ${config.module}`, err);
  }
  let code: number;
  try {
    code = wasi.start(instance);
  } catch (err) {
    fail(EXIT_TRAP, err instanceof WebAssembly.RuntimeError ? "trap" : "error", err);
  }
  Deno.exit(Number.isInteger(code) && code >= 0 && code <= 255 ? code : 1);
}

if (import.meta.main) await main(Deno.args[0]);
