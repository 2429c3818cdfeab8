import { join, resolve } from "node:path";
import type { DeploymentDirective } from "../protocol/directive.ts";
import type { Instance, InstanceFailed, InstanceView, RuntimeAdapter } from "./adapter.ts";
import { abortableActivation } from "./abortable_activation.ts";
import { executableProblem, readHeader } from "./executable_format.ts";
import type { LogLine } from "./log_ring.ts";
import { findProcesses, type ProcessSeen, stopProcess } from "./workload_process.ts";
import { SupervisedProcess } from "./workload_supervisor.ts";
import type { Logger } from "../system/logger.ts";
import { unreachableBy, type WorkloadUser } from "../system/workload_user.ts";

/** A process that exits within this long after a start failed to start. */
const START_GRACE_MS = 1000;
/** SIGTERM, then SIGKILL after this long. */
const STOP_GRACE_MS = 3000;
/** How long a process SIGKILLed may take to be gone before it counts as stuck. */
const KILL_WAIT_MS = 2000;
const PROGRAM = "program";
/** `<instances>/<id>.program.new`: a program being installed, beside the dir it goes into. */
const STAGED_SUFFIX = `.${PROGRAM}.new`;

/** A supervised native program. */
interface Supervised {
  directiveId: string;
  process: SupervisedProcess;
}

/**
 * `native_binary`: the verified blob (checked first: an ELF for this node's machine, or a `#!`
 * script) is put into its instance directory by copy + fsync + rename, so a program a killed agent
 * left running is never overwritten, and runs as a supervised child: given args, a clean
 * environment (PATH, HOME = instance dir, LOAM_INSTANCE_ID), its instance directory as cwd,
 * output into the agent log and a ring of the last lines. A crash restarts it with backoff; three
 * crashes within a minute mark it failed. Programs a killed agent left running (found with `ps`
 * by their path under this agent's instances dir) are stopped, and waited for, before anything
 * replaces them.
 */
export class NativeBinaryAdapter implements RuntimeAdapter {
  readonly kind = "native_binary" as const;
  readonly #instancesDir: string;
  readonly #logger: Logger;
  readonly #onFailed: InstanceFailed;
  /**
   * Instances whose left-over program would not exit, once reconcile has run; before it (an
   * adapter used without the agent's start) each install searches for leftovers itself.
   */
  #stuck?: Set<string>;
  readonly #running = new Map<string, Supervised>();

  readonly #user?: WorkloadUser;

  /** With `user`, programs run as that account and own their instance dir (agent is root). */
  constructor(instancesDir: string, logger: Logger, onFailed: InstanceFailed, user?: WorkloadUser) {
    // absolute, so that a program's argv (how a left-over one is recognised) is its full path
    this.#instancesDir = resolve(instancesDir);
    this.#logger = logger;
    this.#onFailed = onFailed;
    this.#user = user;
  }

  /**
   * Checks the blob's header, installs it, starts it and fails when it exits within the start
   * grace period; an abort stops the program, removes the instance dir and rejects with the reason.
   */
  async activate(
    directive: DeploymentDirective,
    blobPath: string,
    signal: AbortSignal,
  ): Promise<Instance> {
    signal.throwIfAborted();
    const type = directive.artifact.artifact_type;
    if (type.type !== "native_binary") throw new Error(`not a native binary: ${type.type}`);
    const problem = executableProblem(await readHeader(blobPath), type.arch, Deno.build.arch);
    if (problem) throw new Error(problem);
    const instanceId = `bin-${directive.directive_id}`;
    const log = this.#logger.child({ instance_id: instanceId });
    await abortableActivation(this.#dir(instanceId), signal, log, async () => {
      await this.#install(instanceId, blobPath, signal);
      await this.#start(instanceId, directive, signal);
    });
    return { instance_id: instanceId, provider: "process" };
  }

  /**
   * Waits for what a restart needs and nothing more: a left-over program of this instance stopped
   * (when reconcile has not already), the program installed again, the process spawned. It does
   * not wait out the start check: a program that exits now is a crash, restarted with backoff.
   */
  async resume(
    directive: DeploymentDirective,
    instanceId: string,
    blobPath: string,
  ): Promise<void> {
    try {
      await this.#install(instanceId, blobPath);
      await this.#start(instanceId, directive);
    } catch (err) {
      this.#logger.error("instance not resumed", { instance_id: instanceId, error: err });
      throw err;
    }
  }

  /**
   * At start, before any resume: stops every program a killed agent left running under
   * `<instances>/bin-*` (none can be adopted, having no pipes to its output; resume starts the
   * active ones anew), waiting for each to exit, and removes the instance dirs (and half-installed
   * programs) that no active deployment owns: an activating one starts afresh, a deleted one is
   * gone.
   */
  async reconcile(activeInstanceIds: string[]): Promise<void> {
    // listed first: nothing can be activated before the agent is this far in its start
    const entries = await Array.fromAsync(Deno.readDir(this.#instancesDir)).catch((err) => {
      if (err instanceof Deno.errors.NotFound) return [];
      throw err;
    });
    const stuck = await this.#stopLeftovers();
    this.#stuck = new Set(stuck);
    const keep = new Set([...activeInstanceIds, ...stuck]);
    for (const entry of entries) {
      const id = entry.isDirectory
        ? entry.name
        : entry.name.endsWith(STAGED_SUFFIX)
        ? entry.name.slice(0, -STAGED_SUFFIX.length)
        : undefined;
      if (!id?.startsWith("bin-") || (entry.isDirectory && keep.has(id)) || this.#running.has(id)) {
        continue;
      }
      await Deno.remove(join(this.#instancesDir, entry.name), { recursive: true });
      if (entry.isDirectory) {
        this.#logger.info("removed an instance no deployment owns", { instance_id: id });
      }
    }
  }

  #dir(instanceId: string): string {
    return join(this.#instancesDir, instanceId);
  }

  /**
   * The instance whose program a command line starts with (then a space, or the end): the
   * `<directive id>` of `<instances>/bin-<directive id>/program`, which holds no space or slash.
   */
  #instanceRunBy(commandLine: string): string | undefined {
    const prefix = `${this.#instancesDir}/`;
    if (!commandLine.startsWith(`${prefix}bin-`)) return undefined;
    const end = commandLine.indexOf(`/${PROGRAM}`, prefix.length);
    if (end < 0) return undefined;
    const id = commandLine.slice(prefix.length, end);
    const after = commandLine.charAt(end + PROGRAM.length + 1);
    return !/[ /]/.test(id) && (after === "" || after === " ") ? id : undefined;
  }

  /**
   * Stops the programs under this agent's instance dirs that no child of this agent runs: those
   * a killed agent left (all of them, or `instanceId`'s). SIGTERM, SIGKILL after a grace period,
   * each waited for until gone; returns the instances whose program would not go (logged).
   */
  async #stopLeftovers(instanceId?: string): Promise<string[]> {
    const found = await findProcesses((commandLine) => {
      const id = this.#instanceRunBy(commandLine);
      return instanceId === undefined || id === instanceId ? id : undefined;
    }).catch((err) => {
      this.#logger.warn("cannot look for programs left running by a previous agent", {
        error: err,
      });
      return [];
    });
    // after the search, so that a child spawned while it ran counts as ours
    const ours = new Set([...this.#running.values()].map((sup) => sup.process.pid));
    const stuck = await Promise.all(
      found.filter((seen) => !ours.has(seen.pid)).map((seen) => this.#stopLeftover(seen)),
    );
    return stuck.filter((id) => id !== undefined);
  }

  /** Stops one left-over program, logging what happened; returns its instance if it stays. */
  async #stopLeftover(seen: ProcessSeen & { found: string }): Promise<string | undefined> {
    const log = this.#logger.child({ instance_id: seen.found, pid: seen.pid });
    log.warn("stopping a program left running by the previous agent");
    const outcome = await stopProcess(seen, STOP_GRACE_MS, KILL_WAIT_MS).catch((err: Error) => {
      log.error("cannot stop a program left running by the previous agent", { error: err });
      return "still running" as const;
    });
    if (outcome !== "still running") {
      log.info("left-over program stopped", { by: outcome });
      return undefined;
    }
    log.error("a program left running by the previous agent does not exit", {
      waited_ms: STOP_GRACE_MS + KILL_WAIT_MS,
    });
    return seen.found;
  }

  /**
   * Puts the blob in place as `<instance>/program`: a copy staged in the instances dir (out of
   * the workload's reach: it owns its own dir), made executable, fsynced, then renamed over the
   * old one, which works even while that one runs. A left-over program of this instance is
   * stopped and waited for first (by reconcile at start, else here). `signal` stops it between steps.
   */
  async #install(instanceId: string, blobPath: string, signal?: AbortSignal): Promise<void> {
    // after reconcile every leftover has been stopped (or found stuck): no second ps search
    const stuck = this.#stuck
      ? this.#stuck.has(instanceId)
      : (await this.#stopLeftovers(instanceId)).length > 0;
    if (stuck) {
      throw new Error("the program the previous agent left running does not exit, even on SIGKILL");
    }
    signal?.throwIfAborted();
    const dir = this.#dir(instanceId);
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    const staged = join(this.#instancesDir, `${instanceId}${STAGED_SUFFIX}`);
    try {
      // a staged copy a crash left behind may be read-only (copied from a blob)
      await Deno.remove(staged).catch(() => {});
      await Deno.copyFile(blobPath, staged);
      await Deno.chmod(staged, 0o755);
      await fsync(staged);
      signal?.throwIfAborted();
      if (this.#user) {
        // the program is the agent's (read-only to the workload); the directory is the workload's
        await Deno.chown(dir, this.#user.uid, this.#user.gid);
        const problem = await unreachableBy(this.#user, dir);
        if (problem) throw new Error(`cannot run as ${this.#user.name}: ${problem}`);
      }
      await Deno.rename(staged, join(dir, PROGRAM));
      await fsync(dir);
    } finally {
      await Deno.remove(staged).catch(() => {});
    }
  }

  /**
   * Starts the program as a supervised child. With `signal` (an activation), watches it for the
   * start grace period: exiting within it fails the activation with its exit code and last
   * output; `signal` aborting stops it and rejects with the signal's reason. Past the grace
   * period (or at once, without `signal`: a resume) a crash is restarted.
   */
  async #start(
    instanceId: string,
    directive: DeploymentDirective,
    signal?: AbortSignal,
  ): Promise<void> {
    signal?.throwIfAborted();
    const type = directive.artifact.artifact_type;
    const dir = this.#dir(instanceId);
    const process = new SupervisedProcess({
      command: new Deno.Command(join(dir, PROGRAM), {
        args: type.type === "native_binary" ? type.args : [],
        cwd: dir,
        clearEnv: true,
        env: { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: dir, LOAM_INSTANCE_ID: instanceId },
        ...(this.#user ? { uid: this.#user.uid, gid: this.#user.gid } : {}),
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }),
      log: this.#logger.child({ instance_id: instanceId }),
      stopGraceMs: STOP_GRACE_MS,
      policy: "restart",
      onGiveUp: (reason) => {
        this.#running.delete(instanceId);
        this.#onFailed(instanceId, reason);
      },
    });
    // registered before the spawn: a search for leftovers meanwhile must see it as ours
    this.#running.set(instanceId, { directiveId: directive.directive_id, process });
    try {
      await process.start(
        signal && {
          graceMs: START_GRACE_MS,
          describe: (code) => `exited with code ${code} right after start`,
          signal,
        },
      );
    } catch (err) {
      this.#running.delete(instanceId);
      throw err;
    }
  }

  /** Stops the program (SIGTERM, SIGKILL after the grace period) and removes its dir. */
  async deactivate(instanceId: string): Promise<void> {
    const sup = this.#running.get(instanceId);
    this.#running.delete(instanceId);
    await sup?.process.stop();
    await Deno.remove(this.#dir(instanceId), { recursive: true }).catch(() => {});
  }

  /**
   * Stops every instance (agent shutdown; they start again on the next boot): SIGTERM, SIGKILL
   * after the grace period, and resolves once every program has exited.
   */
  async stopAll(): Promise<void> {
    await Promise.all([...this.#running.values()].map((sup) => sup.process.stop()));
  }

  /** Supervised instances for the API. */
  list(): InstanceView[] {
    return [...this.#running.entries()].map(([id, sup]) => ({
      instance_id: id,
      directive_id: sup.directiveId,
      adapter: "native_binary",
      provider: "process",
      ...sup.process.view(),
    }));
  }

  /** The last output lines of an instance, or undefined when it is not running here. */
  logs(instanceId: string, count?: number): LogLine[] | undefined {
    return this.#running.get(instanceId)?.process.logs(count);
  }
}

/** Flushes a file or directory to disk (a directory: the names in it, after a rename). */
async function fsync(path: string): Promise<void> {
  using file = await Deno.open(path);
  await file.sync();
}
