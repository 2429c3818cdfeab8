import { join, resolve } from "node:path";
import type { DeploymentDirective } from "../protocol/directive.ts";
import type { Instance, InstanceFailed, InstanceView, RuntimeAdapter } from "./adapter.ts";
import { abortableActivation } from "./abortable_activation.ts";
import { executableProblem, readHeader } from "./executable_format.ts";
import type { LogLine } from "./log_ring.ts";
import { OutputFiles } from "./output_files.ts";
import {
  findProcesses,
  KILL_WAIT_MS,
  type ProcessSeen,
  readProcessRecord,
  type RecordedProcess,
  rememberProcess,
  stopProcess,
} from "./workload_process.ts";
import { SupervisedProcess } from "./workload_supervisor.ts";
import type { Logger } from "../system/logger.ts";
import { unreachableBy, type WorkloadUser } from "../system/workload_user.ts";

/** A process that exits within this long after a start failed to start. */
const START_GRACE_MS = 1000;
/** SIGTERM, then SIGKILL after this long. */
const STOP_GRACE_MS = 3000;
const PROGRAM = "program";
/** `<instances>/<id>.program.new`: a program being installed, beside the dir it goes into. */
const STAGED_SUFFIX = `.${PROGRAM}.new`;
/**
 * `<instances>/<id>.stdout`, `.stderr`: the program's output; `.pid`: which process runs it. Beside
 * its dir, where the workload cannot replace them.
 */
const PID_SUFFIX = ".pid";
const SIDE_SUFFIXES = [".stdout", ".stderr", PID_SUFFIX];
/**
 * How a program is run: `sh` appends its output to the two files, then execs it (so `ps` shows
 * the program's own argv, by which a later agent finds it). Files, not pipes: the program
 * outlives an agent that is killed or hands over to a new version, and is adopted.
 */
const WITH_OUTPUT_FILES = 'o=$1 e=$2; shift 2; exec "$@" >>"$o" 2>>"$e"';

/** A supervised native program. */
interface Supervised {
  directiveId: string;
  process: SupervisedProcess;
}

/**
 * `native_binary`: the verified blob (checked first: an ELF for this node's machine, or a `#!`
 * script) is put into its instance directory by copy + fsync + rename, so a program a killed agent
 * left running is never overwritten, and runs as a supervised child: given args, a clean
 * environment (PATH, HOME and LOAM_INSTANCE_DIR = instance dir, LOAM_INSTANCE_ID), that dir as cwd,
 * output into files beside it, followed into the agent log and a ring of the last lines. A crash
 * restarts it with backoff; three crashes within a minute mark it failed. A program that a killed
 * agent, or one handing over to a new version, left running (found by the pid record kept beside
 * its dir, which survives an exec into another binary, or with `ps` by its path under this
 * agent's instances dir) is adopted when its deployment is still active, and stopped, and waited
 * for, otherwise.
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
  /** Programs left running for active deployments, found by reconcile, until resume adopts them. */
  readonly #adoptable = new Map<string, ProcessSeen>();
  readonly #running = new Map<string, Supervised>();
  /** The last pid record write of each instance (they are chained, not raced). */
  readonly #pidWrites = new Map<string, Promise<void>>();

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
   * Waits for what a restart needs and nothing more: the program left running adopted, or else
   * (none was, or reconcile has not run) a left-over stopped, the program installed again and the
   * process spawned. It does not wait out the start check: a program that exits now is a crash,
   * restarted with backoff.
   */
  async resume(
    directive: DeploymentDirective,
    instanceId: string,
    blobPath: string,
  ): Promise<void> {
    try {
      const seen = this.#adoptable.get(instanceId);
      this.#adoptable.delete(instanceId);
      if (seen) return await this.#adopt(instanceId, directive, seen);
      await this.#install(instanceId, blobPath);
      await this.#start(instanceId, directive);
    } catch (err) {
      this.#logger.error("instance not resumed", { instance_id: instanceId, error: err });
      throw err;
    }
  }

  /**
   * At start, before any resume: finds the programs an earlier agent left running under
   * `<instances>/bin-*`. One per active deployment is kept for resume to adopt; every other is
   * stopped and waited for (an activating deployment starts afresh, a deleted one is gone), and
   * the instance dirs, output files and half-installed programs no active deployment owns are
   * removed.
   */
  async reconcile(activeInstanceIds: string[]): Promise<void> {
    // listed first: nothing can be activated before the agent is this far in its start
    const entries = await Array.fromAsync(Deno.readDir(this.#instancesDir)).catch((err) => {
      if (err instanceof Deno.errors.NotFound) return [];
      throw err;
    });
    const active = new Set(activeInstanceIds);
    const recordIds = entries.flatMap((e) =>
      e.isFile && e.name.startsWith("bin-") && e.name.endsWith(PID_SUFFIX)
        ? [e.name.slice(0, -PID_SUFFIX.length)]
        : []
    );
    const stuck = await this.#stopLeftovers(recordIds, undefined, (seen) => {
      if (!active.has(seen.found) || this.#adoptable.has(seen.found)) return false;
      this.#adoptable.set(seen.found, seen);
      return true;
    });
    this.#stuck = new Set(stuck);
    const keep = new Set([...activeInstanceIds, ...stuck]);
    for (const entry of entries) {
      const suffix = [STAGED_SUFFIX, ...SIDE_SUFFIXES].find((end) => entry.name.endsWith(end));
      const id = entry.isDirectory
        ? entry.name
        : suffix
        ? entry.name.slice(0, -suffix.length)
        : undefined;
      const owned = entry.isDirectory || suffix !== STAGED_SUFFIX;
      if (!id?.startsWith("bin-") || (owned && keep.has(id)) || this.#running.has(id)) {
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
   * an earlier agent left (all of them, or `instanceId`'s), found by their argv or by the pid
   * records of `recordIds` (even after an exec changed their argv), except those `adopt` takes.
   * SIGTERM, SIGKILL after a grace period, each waited for until gone; returns the instances
   * whose program would not go (logged).
   */
  async #stopLeftovers(
    recordIds: string[],
    instanceId?: string,
    adopt: (seen: ProcessSeen & { found: string }) => boolean = () => false,
  ): Promise<string[]> {
    // the recorded ones come first, so that adoption prefers them
    const found = await findProcesses((commandLine) => {
      const id = this.#instanceRunBy(commandLine);
      return instanceId === undefined || id === instanceId ? id : undefined;
    }, await this.#records(recordIds)).catch((err) => {
      this.#logger.warn("cannot look for programs left running by a previous agent", {
        error: err,
      });
      return [];
    });
    // a process whose parent was found too was forked by it (a script's subshell, a worker): it
    // goes with the first of its line, ours, adopted or stopped
    const byPid = new Map(found.map((seen) => [seen.pid, seen]));
    const rootOf = (seen: ProcessSeen & { found: string }) => {
      let root = seen;
      while (byPid.has(root.ppid)) root = byPid.get(root.ppid)!;
      return root;
    };
    // after the search, so that a child spawned while it ran counts as ours
    const ours = new Set([...this.#running.values()].map((sup) => sup.process.pid));
    const leftovers = found.filter((seen) => !ours.has(rootOf(seen).pid));
    const adopted = new Set(
      leftovers.filter((seen) => rootOf(seen) === seen && adopt(seen)).map((seen) => seen.pid),
    );
    const stuck = await Promise.all(
      leftovers.filter((seen) => !adopted.has(rootOf(seen).pid)).map((seen) =>
        this.#stopLeftover(seen)
      ),
    );
    return stuck.filter((id) => id !== undefined);
  }

  /** What the pid records of `ids` say, by pid. */
  async #records(ids: string[]): Promise<Map<number, RecordedProcess<string>>> {
    const records = await Promise.all(ids.map((id) => readProcessRecord(this.#pidFile(id))));
    return new Map(
      records.flatMap((r, i) => r ? [[r.pid, { started: r.started, found: ids[i]! }]] : []),
    );
  }

  #pidFile(instanceId: string): string {
    return `${this.#dir(instanceId)}${PID_SUFFIX}`;
  }

  /**
   * Records which process runs `instanceId` now (after each spawn): one write at a time per
   * instance, in spawn order. A failure is logged; the program is still found by its argv.
   */
  #remember(instanceId: string, pid: number): void {
    const previous = this.#pidWrites.get(instanceId) ?? Promise.resolve();
    const write = previous.then(() => rememberProcess(this.#pidFile(instanceId), pid)).then(
      () => {},
      (err) => this.#logger.warn("pid record not written", { instance_id: instanceId, error: err }),
    );
    this.#pidWrites.set(instanceId, write);
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
      : (await this.#stopLeftovers([instanceId], instanceId)).length > 0;
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
      await new OutputFiles(dir).prepare(this.#user);
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
    const process = this.#supervise(instanceId, directive);
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

  /** Takes over a program an earlier agent left running for this active instance. */
  async #adopt(
    instanceId: string,
    directive: DeploymentDirective,
    seen: ProcessSeen,
  ): Promise<void> {
    // a program an older loam started wrote to pipes: its files are made now, empty
    await new OutputFiles(this.#dir(instanceId)).prepare(this.#user);
    const process = this.#supervise(instanceId, directive);
    this.#running.set(instanceId, { directiveId: directive.directive_id, process });
    await process.adopt(seen);
  }

  /** The supervisor of an instance's program, run through {@link WITH_OUTPUT_FILES}. */
  #supervise(instanceId: string, directive: DeploymentDirective): SupervisedProcess {
    const type = directive.artifact.artifact_type;
    const dir = this.#dir(instanceId);
    const output = new OutputFiles(dir);
    const args = type.type === "native_binary" ? type.args : [];
    return new SupervisedProcess({
      command: new Deno.Command("/bin/sh", {
        args: [
          "-c",
          WITH_OUTPUT_FILES,
          "loam-run",
          output.paths.stdout,
          output.paths.stderr,
          join(dir, PROGRAM),
          ...args,
        ],
        cwd: dir,
        clearEnv: true,
        env: {
          PATH: "/usr/local/bin:/usr/bin:/bin",
          HOME: dir,
          LOAM_INSTANCE_ID: instanceId,
          LOAM_INSTANCE_DIR: dir,
        },
        ...(this.#user ? { uid: this.#user.uid, gid: this.#user.gid } : {}),
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }),
      output,
      onSpawned: (pid) => this.#remember(instanceId, pid),
      log: this.#logger.child({ instance_id: instanceId }),
      stopGraceMs: STOP_GRACE_MS,
      policy: "restart",
      onGiveUp: (reason) => {
        this.#running.delete(instanceId);
        this.#onFailed(instanceId, reason);
      },
    });
  }

  /** Stops the program (SIGTERM, SIGKILL after the grace period), removes its dir and output. */
  async deactivate(instanceId: string): Promise<void> {
    const sup = this.#running.get(instanceId);
    this.#running.delete(instanceId);
    await sup?.process.stop();
    await Deno.remove(this.#dir(instanceId), { recursive: true }).catch(() => {});
    await new OutputFiles(this.#dir(instanceId)).remove();
    await this.#pidWrites.get(instanceId);
    this.#pidWrites.delete(instanceId);
    await Deno.remove(this.#pidFile(instanceId)).catch(() => {});
  }

  /**
   * At agent shutdown. A stop (SIGTERM, SIGINT) stops every program, SIGKILL after the grace
   * period, and resolves once each has exited; they start again on the next boot. A hand-over
   * to a new loam version leaves them running, for that version to adopt.
   */
  async stopAll(how: { handOver: boolean }): Promise<void> {
    await Promise.all(
      [...this.#running.values()].map((sup) =>
        how.handOver ? sup.process.detach() : sup.process.stop()
      ),
    );
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
