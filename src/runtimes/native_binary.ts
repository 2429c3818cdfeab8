import { join } from "node:path";
import type { DeploymentDirective } from "../protocol/directive.ts";
import type { Instance, InstanceFailed, InstanceView, RuntimeAdapter } from "./adapter.ts";
import { type LogLine, LogRing } from "./log_ring.ts";
import { captureOutput, recordCrash, terminate } from "./workload_process.ts";
import { normalArch } from "../deploy/targeting.ts";
import type { Logger } from "../system/logger.ts";
import { unreachableBy, type WorkloadUser } from "../system/workload_user.ts";

/** A process that exits within this long after a start failed to start. */
const START_GRACE_MS = 1000;
const STOP_GRACE_MS = 3000;
const LOG_LINES = 500;

/** A supervised native program. */
interface Supervised {
  directiveId: string;
  args: string[];
  dir: string;
  logs: LogRing;
  child?: Deno.ChildProcess;
  crashes: number[];
  stopping: boolean;
  startedAt?: string;
  exitCode?: number;
}

/**
 * `native_binary`: the verified blob, copied into its instance directory and made executable,
 * runs as a supervised child: given args, a clean environment (PATH, HOME = instance dir,
 * LOAM_INSTANCE_ID), its instance directory as cwd, output into the agent log and a ring of the
 * last lines. A crash restarts it with backoff; three crashes within a minute mark it failed.
 */
export class NativeBinaryAdapter implements RuntimeAdapter {
  readonly kind = "native_binary" as const;
  readonly #instancesDir: string;
  readonly #logger: Logger;
  readonly #onFailed: InstanceFailed;
  readonly #running = new Map<string, Supervised>();

  readonly #user?: WorkloadUser;

  /** With `user`, programs run as that account and own their instance dir (agent is root). */
  constructor(instancesDir: string, logger: Logger, onFailed: InstanceFailed, user?: WorkloadUser) {
    this.#instancesDir = instancesDir;
    this.#logger = logger;
    this.#onFailed = onFailed;
    this.#user = user;
  }

  async activate(directive: DeploymentDirective, blobPath: string): Promise<Instance> {
    const type = directive.artifact.artifact_type;
    if (type.type !== "native_binary") throw new Error(`not a native binary: ${type.type}`);
    if (normalArch(type.arch) !== normalArch(Deno.build.arch)) {
      throw new Error(
        `built for ${normalArch(type.arch)}, this node is ${normalArch(Deno.build.arch)}`,
      );
    }
    const instanceId = `bin-${directive.directive_id}`;
    await this.#install(instanceId, blobPath);
    await this.#start(instanceId, directive, true);
    return { instance_id: instanceId, provider: "process" };
  }

  async resume(
    directive: DeploymentDirective,
    instanceId: string,
    blobPath: string,
  ): Promise<void> {
    await this.#killLeftover(instanceId);
    await this.#install(instanceId, blobPath);
    await this.#start(instanceId, directive, false);
  }

  /**
   * After the agent was killed (-9, OOM) its children may still run. The pid file names the
   * last process; it is killed only if `ps` shows it still runs this instance's program (a pid
   * reused after a reboot belongs to someone else).
   */
  async #killLeftover(instanceId: string): Promise<void> {
    const dir = join(this.#instancesDir, instanceId);
    const pid = Number(await Deno.readTextFile(join(dir, "pid")).catch(() => ""));
    if (!Number.isInteger(pid) || pid <= 1) return;
    const ps = await new Deno.Command("ps", {
      args: ["-o", "args=", "-p", String(pid)],
      stdout: "piped",
      stderr: "null",
    }).output().catch(() => undefined);
    const args = ps?.success ? new TextDecoder().decode(ps.stdout).trim() : "";
    if (!args.includes(join(dir, "program"))) return;
    this.#logger.warn("killing the instance left running by the previous agent", {
      instance_id: instanceId,
      pid,
    });
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // exited meanwhile
    }
  }

  async #install(instanceId: string, blobPath: string): Promise<void> {
    const dir = join(this.#instancesDir, instanceId);
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    await Deno.copyFile(blobPath, join(dir, "program"));
    await Deno.chmod(join(dir, "program"), 0o755);
    if (this.#user) {
      // the program is the agent's (read-only to the workload); the directory is the workload's
      await Deno.chown(dir, this.#user.uid, this.#user.gid);
      const problem = await unreachableBy(this.#user, dir);
      if (problem) throw new Error(`cannot run as ${this.#user.name}: ${problem}`);
    }
  }

  async #start(instanceId: string, directive: DeploymentDirective, strict: boolean): Promise<void> {
    const type = directive.artifact.artifact_type;
    const sup: Supervised = {
      directiveId: directive.directive_id,
      args: type.type === "native_binary" ? type.args : [],
      dir: join(this.#instancesDir, instanceId),
      logs: new LogRing(LOG_LINES),
      crashes: [],
      stopping: false,
    };
    this.#running.set(instanceId, sup);
    const exited = this.#spawn(instanceId, sup);
    const early = await Promise.race([
      exited,
      new Promise<undefined>((r) => setTimeout(() => r(undefined), START_GRACE_MS)),
    ]);
    if (early !== undefined && strict) {
      this.#running.delete(instanceId);
      const tail = sup.logs.tail(5).map((l) => l.line).join(" | ");
      throw new Error(`exited with code ${early} right after start${tail ? `: ${tail}` : ""}`);
    }
    void exited.then((code) => this.#onExit(instanceId, sup, code));
  }

  /** Starts the process; resolves with its exit code. */
  #spawn(instanceId: string, sup: Supervised): Promise<number> {
    const log = this.#logger.child({ instance_id: instanceId });
    const child = new Deno.Command(join(sup.dir, "program"), {
      args: sup.args,
      cwd: sup.dir,
      clearEnv: true,
      env: { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: sup.dir, LOAM_INSTANCE_ID: instanceId },
      ...(this.#user ? { uid: this.#user.uid, gid: this.#user.gid } : {}),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    sup.child = child;
    sup.exitCode = undefined;
    sup.startedAt = new Date().toISOString();
    Deno.writeTextFileSync(join(sup.dir, "pid"), String(child.pid));
    log.info("instance started", { pid: child.pid });
    const output = captureOutput(child, sup.logs, log);
    return child.status.then(async (status) => {
      await output.catch(() => {});
      sup.exitCode = status.code;
      return status.code;
    });
  }

  async #onExit(instanceId: string, sup: Supervised, code: number): Promise<void> {
    if (sup.stopping) return;
    const verdict = recordCrash(sup.crashes, code);
    const log = this.#logger.child({ instance_id: instanceId });
    if ("giveUp" in verdict) {
      this.#running.delete(instanceId);
      log.error("instance broken", { reason: verdict.giveUp });
      this.#onFailed(instanceId, verdict.giveUp);
      return;
    }
    const delay = verdict.restartInMs;
    log.warn("instance exited; restarting", { exit_code: code, delay_ms: delay });
    await new Promise((r) => setTimeout(r, delay));
    if (sup.stopping) return;
    void this.#spawn(instanceId, sup).then((next) => this.#onExit(instanceId, sup, next));
  }

  async deactivate(instanceId: string): Promise<void> {
    const sup = this.#running.get(instanceId);
    this.#running.delete(instanceId);
    if (sup?.child) {
      sup.stopping = true;
      await terminate(sup.child, STOP_GRACE_MS);
    }
    await Deno.remove(join(this.#instancesDir, instanceId), { recursive: true }).catch(() => {});
  }

  /** Stops every instance (agent shutdown); they start again on the next boot. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.#running.keys()].map(async (id) => {
      const sup = this.#running.get(id)!;
      sup.stopping = true;
      try {
        sup.child?.kill("SIGTERM");
        await sup.child?.status;
      } catch {
        // already gone
      }
    }));
  }

  /** Supervised instances for the API. */
  list(): InstanceView[] {
    return [...this.#running.entries()].map(([id, sup]) => ({
      instance_id: id,
      directive_id: sup.directiveId,
      adapter: "native_binary",
      state: sup.exitCode === undefined ? "running" : "restarting",
      provider: "process",
      started_at: sup.startedAt ?? null,
      ...(sup.exitCode !== undefined ? { exit_code: sup.exitCode } : {}),
      pid: sup.child?.pid ?? null,
      restarts: sup.crashes.length,
    }));
  }

  /** The last output lines of an instance, or undefined when it is not running here. */
  logs(instanceId: string, count?: number): LogLine[] | undefined {
    return this.#running.get(instanceId)?.logs.tail(count);
  }
}
