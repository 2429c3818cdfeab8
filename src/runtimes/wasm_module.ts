import { basename, isAbsolute, join } from "node:path";
import { z } from "zod";
import type { DeploymentDirective } from "../protocol/directive.ts";
import { type Grants, parseGrants } from "../protocol/wasi_capabilities.ts";
import type { Instance, InstanceFailed, InstanceView, RuntimeAdapter } from "./adapter.ts";
import { abortableActivation } from "./abortable_activation.ts";
import type { LogLine } from "./log_ring.ts";
import { SupervisedProcess } from "./workload_supervisor.ts";
import type { WasmRunConfig } from "./wasm_runner.ts";
import { packaging } from "../system/packaged.ts";
import { atomicWriteFile } from "../system/atomic_write.ts";
import type { Logger } from "../system/logger.ts";

/** The agent's WASM settings (`[wasm]`). */
export interface WasmSettings {
  /** Wall-time cap of a run-to-completion module when the directive gives none. */
  maxSeconds: number;
  /** Linear-memory cap when the directive gives none. */
  memoryMb: number;
  /** Whether `fs:` grants may name absolute host directories (else only under the instance dir). */
  allowAbsolutePaths: boolean;
}

/** The directive's `config` for a WASM module. */
const WasmConfigSchema = z.object({
  /** `run`: to completion (exit code kept); `service`: supervised and restarted. */
  mode: z.enum(["run", "service"]).default("run"),
  /** argv after argv[0]; needs the `args` capability. */
  args: z.array(z.string()).default([]),
  /** Values of the `env:<NAME>` grants. */
  env: z.record(z.string(), z.string()).default({}),
  /** Wall-time cap for `run` mode. */
  timeout_seconds: z.number().positive().max(86_400).optional(),
  memory_mb: z.number().int().min(1).max(65_536).optional(),
}).passthrough();

type WasmConfig = z.infer<typeof WasmConfigSchema>;

/**
 * The runner script and how Deno finds its imports: from source, wasm_runner.ts with the
 * project's deno.json; in a self-extracting file, the bundled runner its payload ships beside
 * the agent, which needs no config at all.
 */
function runnerInvocation(): string[] {
  const packaged = packaging();
  if (packaged.kind === "sfx") return ["--no-config", join(packaged.dir, "wasm_runner.js")];
  const config = new URL("../../deno.json", import.meta.url).pathname;
  return [`--config=${config}`, new URL("./wasm_runner.ts", import.meta.url).pathname];
}
/** A module that exits with a non-zero code within this long after a start failed to start. */
const START_GRACE_MS = 1000;
const STOP_GRACE_MS = 2000;

interface Module {
  directiveId: string;
  /** Granted directories under the instance dir, created before the module starts. */
  grantedDirs: string[];
  mode: WasmConfig["mode"];
  dir: string;
  process: SupervisedProcess;
}

/** How a `run` module ended, kept in its exit file across agent restarts. */
interface Ended {
  state: "exited" | "killed";
  exit_code: number;
}

/** The Deno flags that grant the runner exactly `grants` (see wasm_runner.ts). */
function runnerPermissions(modulePath: string, run: WasmRunConfig): string[] {
  const dirs = Object.values(run.preopens).map((p) => p.host);
  // new WASI() needs read+write on every preopen; the runner takes write back from read-only ones
  const writes = [...dirs, ...(run.stdout && run.stderr ? [] : ["/dev/null"])];
  return [
    `--allow-read=${[modulePath, ...dirs].join(",")}`,
    ...(writes.length > 0 ? [`--allow-write=${writes.join(",")}`] : []),
  ];
}

/**
 * `wasm_module`: a WASI preview1 module run under Deno's node:wasi in its own `deno run`
 * process whose permissions are exactly the granted capabilities (Worker.terminate cannot stop
 * a busy loop; a process can be killed). `run` modules run to completion under a wall-time
 * cap, their exit code kept in the instance record; `service` modules are supervised and
 * restarted (three crashes within a minute fail the deployment). Memory is capped in pages.
 */
export class WasmModuleAdapter implements RuntimeAdapter {
  readonly kind = "wasm_module" as const;
  readonly #instancesDir: string;
  readonly #settings: WasmSettings;
  readonly #logger: Logger;
  readonly #onFailed: InstanceFailed;
  readonly #modules = new Map<string, Module>();

  constructor(
    instancesDir: string,
    settings: WasmSettings,
    logger: Logger,
    onFailed: InstanceFailed,
  ) {
    this.#instancesDir = instancesDir;
    this.#settings = settings;
    this.#logger = logger;
    this.#onFailed = onFailed;
  }

  /**
   * Starts the module and fails when it exits with a non-zero code within the start grace
   * period; an abort stops it, removes its instance dir and rejects with the reason.
   */
  async activate(
    directive: DeploymentDirective,
    blobPath: string,
    signal: AbortSignal,
  ): Promise<Instance> {
    const instanceId = `wasm-${directive.directive_id}`;
    const log = this.#logger.child({ instance_id: instanceId });
    await abortableActivation(
      join(this.#instancesDir, instanceId),
      signal,
      log,
      () => this.#start(directive, instanceId, blobPath, signal),
    );
    return { instance_id: instanceId, provider: "node:wasi" };
  }

  /** A `run` module that finished before the restart stays finished; others start again. */
  async resume(directive: DeploymentDirective, instanceId: string, blobPath: string) {
    const done: Ended | undefined = await Deno.readTextFile(this.#exitFile(instanceId)).then(
      JSON.parse,
      () => undefined,
    );
    if (done) {
      const ended = { state: done.state, exitCode: done.exit_code };
      this.#modules.set(instanceId, this.#prepare(directive, instanceId, ended));
      return;
    }
    await this.#start(directive, instanceId, blobPath);
  }

  async deactivate(instanceId: string): Promise<void> {
    await this.#modules.get(instanceId)?.process.stop();
    this.#modules.delete(instanceId);
    await Deno.remove(join(this.#instancesDir, instanceId), { recursive: true }).catch(() => {});
    await Deno.remove(this.#exitFile(instanceId)).catch(() => {});
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#modules.values()].map((m) => m.process.stop()));
  }

  list(): InstanceView[] {
    return [...this.#modules.entries()].map(([id, m]) => ({
      instance_id: id,
      directive_id: m.directiveId,
      adapter: "wasm_module",
      provider: "node:wasi",
      ...m.process.view(),
      mode: m.mode,
    }));
  }

  logs(instanceId: string, count?: number): LogLine[] | undefined {
    return this.#modules.get(instanceId)?.process.logs(count);
  }

  /** Where a finished `run` module's end is kept (beside its dir: the guest may write inside). */
  #exitFile(instanceId: string): string {
    return join(this.#instancesDir, `${instanceId}.exit.json`);
  }

  /**
   * Checks the directive against its grants and builds the runner process (not started; with
   * `ended`, one that ended before the agent restarted).
   */
  #prepare(
    directive: DeploymentDirective,
    instanceId: string,
    ended?: { state: Ended["state"]; exitCode: number },
  ): Module {
    if (basename(Deno.execPath()) !== "deno") {
      throw new Error(
        "WASM modules run in a `deno run` process with exactly their capabilities as " +
          "permissions; this compiled loam cannot narrow its own, so it does not run them yet",
      );
    }
    const type = directive.artifact.artifact_type;
    if (type.type !== "wasm_module") throw new Error(`not a WASM module: ${type.type}`);
    const parsed = WasmConfigSchema.safeParse(directive.config ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new Error(`config.${issue.path.join(".")}: ${issue.message}`);
    }
    const config = parsed.data;
    const grants = parseGrants(type.wasi_capabilities);
    const dir = join(this.#instancesDir, instanceId);
    const run = this.#runConfig(config, grants, dir, join(dir, "module.wasm"));
    const memoryPages = (config.memory_mb ?? this.#settings.memoryMb) * 16;
    const denoDir = Deno.env.get("DENO_DIR");
    const log = this.#logger.child({ instance_id: instanceId });
    const process = new SupervisedProcess({
      command: new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--no-prompt",
          "--no-lock",
          "--cached-only",
          ...runnerPermissions(run.module, run),
          `--v8-flags=--wasm-max-mem-pages=${memoryPages}`,
          ...runnerInvocation(),
          JSON.stringify(run),
        ],
        cwd: dir,
        clearEnv: true,
        // only what deno itself needs to find its cache; the module's env is in the config
        env: {
          PATH: "/usr/bin:/bin",
          HOME: Deno.env.get("HOME") ?? "/root",
          ...(denoDir ? { DENO_DIR: denoDir } : {}),
        },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }),
      log,
      stopGraceMs: STOP_GRACE_MS,
      policy: config.mode === "run" ? "never" : "restart",
      // the cap is on a run to completion; a service runs for as long as it is deployed
      ...(config.mode === "run"
        ? { wallTimeMs: (config.timeout_seconds ?? this.#settings.maxSeconds) * 1000 }
        : {}),
      started: { msg: "wasm module started", fields: { mode: config.mode } },
      onEnded: (state, code) => {
        log.info("wasm module finished", { exit_code: code, state });
        const record = { state, exit_code: code, at: new Date().toISOString() };
        void atomicWriteFile(this.#exitFile(instanceId), JSON.stringify(record)).catch(() => {});
      },
      onGiveUp: (reason) => this.#onFailed(instanceId, reason),
    }, ended);
    return {
      directiveId: directive.directive_id,
      grantedDirs: grants.dirs.filter((d) => !isAbsolute(d.path)).map((d) => join(dir, d.path)),
      mode: config.mode,
      dir,
      process,
    };
  }

  #runConfig(config: WasmConfig, grants: Grants, dir: string, module: string): WasmRunConfig {
    for (const name of Object.keys(config.env)) {
      if (!grants.env.includes(name)) {
        throw new Error(`config.env.${name} is not granted: add the capability env:${name}`);
      }
    }
    if (config.args.length > 0 && !grants.args) {
      throw new Error("config.args needs the capability args");
    }
    const preopens: WasmRunConfig["preopens"] = {};
    for (const grant of grants.dirs) {
      if (isAbsolute(grant.path) && !this.#settings.allowAbsolutePaths) {
        throw new Error(
          `fs grant ${grant.path} is absolute; set wasm.allow_absolute_paths to allow host paths`,
        );
      }
      const host = isAbsolute(grant.path) ? grant.path : join(dir, grant.path);
      preopens[grant.path] = { host, write: grant.write };
    }
    return {
      module,
      args: [basename(module), ...config.args],
      env: config.env,
      preopens,
      stdout: grants.stdout,
      stderr: grants.stderr,
      clock: grants.clock,
      random: grants.random,
    };
  }

  /**
   * Installs the module and starts its runner. With `signal` (an activation), a non-zero exit
   * within the start grace period fails it with the code and the last output lines.
   */
  async #start(
    directive: DeploymentDirective,
    instanceId: string,
    blobPath: string,
    signal?: AbortSignal,
  ): Promise<void> {
    const module = this.#prepare(directive, instanceId);
    await Deno.mkdir(module.dir, { recursive: true, mode: 0o700 });
    await Deno.copyFile(blobPath, join(module.dir, "module.wasm"));
    await Deno.remove(this.#exitFile(instanceId)).catch(() => {});
    for (const host of module.grantedDirs) await Deno.mkdir(host, { recursive: true });
    this.#modules.set(instanceId, module);
    try {
      await module.process.start(
        signal && {
          graceMs: START_GRACE_MS,
          fails: (code) => code !== 0,
          describe: (code) => `module exited with code ${code}`,
          signal,
        },
      );
    } catch (err) {
      this.#modules.delete(instanceId);
      throw err;
    }
  }
}
