/**
 * One supervised workload process, as the native and WASM adapters run them: spawned from a
 * command with its output captured, checked for an early exit at start, restarted with backoff
 * after a crash and given up on after a crash loop, stopped with SIGTERM then SIGKILL.
 * @module
 */
import { type LogLine, LogRing } from "./log_ring.ts";
import type { OutputFiles } from "./output_files.ts";
import {
  KILL_WAIT_MS,
  type ProcessSeen,
  startedAt,
  stopProcess,
  whenGone,
} from "./workload_process.ts";
import type { Logger } from "../system/logger.ts";

/** Output lines kept per instance for the logs route. */
const LOG_LINES = 500;
/** This many crashes within the window mark an instance failed (like Greengrass's BROKEN). */
const MAX_CRASHES = 3;
const CRASH_WINDOW_MS = 60_000;
const RESTART_BACKOFF_MS = [500, 1000, 2000];

/** What a supervised process is doing, as `/v1/instances` shows it. */
export type SupervisedState = "running" | "restarting" | "exited" | "killed";

/** The supervisor's part of an instance record; the adapter adds its own fields. */
export interface SupervisedView {
  state: SupervisedState;
  started_at: string | null;
  exit_code?: number;
  pid: number | null;
  restarts: number;
}

/** How a {@link SupervisedProcess} runs its command. */
export interface SupervisorOptions {
  /**
   * Spawned anew at every (re)start: stdout and stderr piped, or, with
   * {@link SupervisorOptions.output}, written by the command itself into those files.
   */
  command: Deno.Command;
  /**
   * The files the command writes its output to (through a shell redirect): followed instead of
   * pipes, so that the process can outlive this agent and be adopted by the next one.
   */
  output?: OutputFiles;
  /** Told each spawned pid (a restart's too), e.g. to record it for a later agent to adopt. */
  onSpawned?(pid: number): void;
  /** The instance's logger (with its `instance_id`): output lines and what happens go there. */
  log: Logger;
  /** How long a stop waits after SIGTERM before it sends SIGKILL. */
  stopGraceMs: number;
  /**
   * `restart`: every exit is a crash, restarted with backoff (a service); `never`: an exit ends
   * the process for good (run to completion), reported to {@link SupervisorOptions.onEnded}.
   */
  policy: "restart" | "never";
  /** A cap on each run's wall time: past it the process is SIGKILLed and shows as `killed`. */
  wallTimeMs?: number;
  /**
   * The agent-log message and fields that announce each spawn (tests and operators look for
   * them). @default "instance started", no fields
   */
  started?: { msg: string; fields?: Record<string, unknown> };
  /** A process of policy `never` ended (exited, or killed at its wall-time cap). */
  onEnded?(state: "exited" | "killed", code: number): void;
  /** Crashed too often, or could not be restarted: it is not restarted again. */
  onGiveUp(reason: string): void;
}

/** How {@link SupervisedProcess.start} checks that the process stays up. */
export interface StartCheck {
  /** An exit within this long after the spawn fails the start. */
  graceMs: number;
  /** Whether an exit with `code` within the grace period fails the start. @default every exit */
  fails?(code: number): boolean;
  /** The start error's message for an early exit; the last output lines are appended. */
  describe(code: number): string;
  /** Aborting it during the check stops the process; the start rejects with its reason. */
  signal?: AbortSignal;
}

/**
 * One workload process under supervision: the adapters keep what differs (how the command is
 * built and installed, what an end means), this keeps the process alive, its output and its
 * record for `list()`. Exits are awaited on the child itself, never on the end of its output:
 * a child it forked may keep the pipes open long after it is gone. A process an earlier agent
 * started is {@link adopt}ed instead: watched with `ps`, its exit code unknown, and restarted
 * like any other when it ends.
 */
export class SupervisedProcess {
  readonly #options: SupervisorOptions;
  readonly #logs = new LogRing(LOG_LINES);
  readonly #crashes: number[] = [];
  #child?: Deno.ChildProcess;
  #adopted?: ProcessSeen;
  /** Aborted to stop watching an adopted process (a stop, a detach). */
  #watching?: AbortController;
  #state: SupervisedState = "running";
  #exitCode?: number;
  #startedAt?: string;
  #stopping = false;
  #restartTimer?: ReturnType<typeof setTimeout>;

  /**
   * With `ended`, the record of a process that ended before the agent restarted (a
   * run-to-completion module): listed as it ended, and never started.
   */
  constructor(
    options: SupervisorOptions,
    ended?: { state: "exited" | "killed"; exitCode: number },
  ) {
    this.#options = options;
    if (ended) [this.#state, this.#exitCode] = [ended.state, ended.exitCode];
  }

  /** The pid of the current process, if one was spawned or adopted. */
  get pid(): number | undefined {
    return this.#child?.pid ?? this.#adopted?.pid;
  }

  /**
   * Spawns the process. With `check`, resolves only once it stayed up for the grace period (or
   * exited in a way `check.fails` accepts), and rejects with the exit code and the last output
   * lines when it exits earlier; an abort of `check.signal` stops it and rejects with the
   * signal's reason. Without, resolves once spawned: a later exit is the policy's to handle.
   * @throws when the command cannot be spawned, or as above
   */
  async start(check?: StartCheck): Promise<void> {
    check?.signal?.throwIfAborted();
    const exited = this.#spawn();
    if (check) await this.#checkStart(exited, check);
    void exited.then((code) => this.#onExit(code));
  }

  /**
   * Takes over `seen`, a process of this workload that an earlier agent started and left running
   * (output files only: pipes died with that agent). Its last output lines come back into the
   * ring; its end is noticed by polling `ps` and handled as the policy says, like a child's.
   */
  async adopt(seen: ProcessSeen): Promise<void> {
    const { output, log } = this.#options;
    if (!output) throw new Error("only a process writing to output files can be adopted");
    this.#adopted = seen;
    this.#state = "running";
    this.#startedAt = startedAt(seen) ?? new Date().toISOString();
    await output.follow(this.#logs, log, true);
    log.info("adopted a program left running", { pid: seen.pid });
    const watching = new AbortController();
    this.#watching = watching;
    void whenGone(seen, watching.signal).then(async (ended) => {
      if (!ended || this.#adopted !== seen) return;
      await output.read(this.#logs, log);
      this.#adopted = undefined;
      this.#state = "exited";
      this.#onExit(null);
    });
  }

  async #checkStart(exited: Promise<number>, check: StartCheck): Promise<void> {
    const { signal } = check;
    const outcome = await new Promise<"running" | "aborted" | number>((settle) => {
      const done = (result: "running" | "aborted" | number) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        settle(result);
      };
      const onAbort = () => done("aborted");
      const timer = setTimeout(() => done("running"), check.graceMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      void exited.then(done);
    });
    if (outcome === "aborted") {
      await this.stop();
      throw signal!.reason;
    }
    if (outcome === "running" || !(check.fails?.(outcome) ?? true)) return;
    const tail = this.#logs.tail(5).map((l) => l.line).join(" | ");
    throw new Error(`${check.describe(outcome)}${tail ? `: ${tail}` : ""}`);
  }

  /** Starts the command; resolves with its exit code. Throws when it cannot be started. */
  #spawn(): Promise<number> {
    const { command, log, wallTimeMs, started, output } = this.#options;
    const child = command.spawn();
    this.#child = child;
    this.#adopted = undefined;
    this.#options.onSpawned?.(child.pid);
    this.#state = "running";
    this.#exitCode = undefined;
    this.#startedAt = new Date().toISOString();
    log.info(started?.msg ?? "instance started", { pid: child.pid, ...started?.fields });
    const capped = wallTimeMs === undefined ? undefined : setTimeout(() => {
      this.#state = "killed";
      this.#logs.push("stderr", `killed after ${wallTimeMs / 1000} s (wall-time cap)`);
      child.kill("SIGKILL");
    }, wallTimeMs);
    const captured = output
      ? output.follow(this.#logs, log)
      : captureOutput(child, this.#logs, log);
    return child.status.then(async (status) => {
      clearTimeout(capped);
      await captured.catch(() => {});
      // the last lines it wrote, before the exit is judged (a start check quotes them)
      await output?.read(this.#logs, log);
      this.#exitCode = status.code;
      if (this.#state !== "killed") this.#state = "exited";
      return status.code;
    });
  }

  /** After an exit (`code` null: an adopted process, whose status only its parent saw). */
  #onExit(code: number | null): void {
    if (this.#stopping) return;
    const { log, policy } = this.#options;
    if (policy === "never") {
      this.#options.onEnded?.(this.#state === "killed" ? "killed" : "exited", code ?? -1);
      return;
    }
    const verdict = recordCrash(this.#crashes, code);
    if ("giveUp" in verdict) {
      this.#giveUp(verdict.giveUp);
      return;
    }
    const delay = verdict.restartInMs;
    this.#state = "restarting";
    log.warn("instance exited; restarting", { exit_code: code, delay_ms: delay });
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#stopping) return;
      let next: Promise<number>;
      try {
        next = this.#spawn();
      } catch (err) {
        this.#giveUp(`cannot restart: ${(err as Error).message}`);
        return;
      }
      void next.then((c) => this.#onExit(c));
    }, delay);
  }

  #giveUp(reason: string): void {
    this.#options.log.error("instance broken", { reason });
    this.#options.onGiveUp(reason);
  }

  /**
   * Stops it for good: no restart is pending any more, and the process gets SIGTERM, then
   * SIGKILL after the grace period; resolves once it has exited.
   */
  async stop(): Promise<void> {
    this.#release();
    const adopted = this.#adopted;
    if (this.#child) await terminate(this.#child, this.#options.stopGraceMs);
    else if (adopted) {
      const outcome = await stopProcess(adopted, this.#options.stopGraceMs, KILL_WAIT_MS);
      if (outcome === "still running") {
        throw new Error(`pid ${adopted.pid} does not exit, even on SIGKILL`);
      }
    }
    await this.#options.output?.stop();
  }

  /**
   * Lets go of the process and leaves it running (a hand-over to the next agent version, which
   * adopts it): no more restarts, no more watching, the output files read to here.
   */
  async detach(): Promise<void> {
    this.#release();
    await this.#options.output?.stop();
  }

  #release(): void {
    this.#stopping = true;
    clearTimeout(this.#restartTimer);
    this.#watching?.abort();
  }

  /** The supervisor's fields of the instance record. */
  view(): SupervisedView {
    return {
      state: this.#state,
      started_at: this.#startedAt ?? null,
      ...(this.#exitCode !== undefined ? { exit_code: this.#exitCode } : {}),
      pid: this.pid ?? null,
      restarts: this.#crashes.length,
    };
  }

  /** The last `count` output lines (all kept by default), oldest first. */
  logs(count?: number): LogLine[] {
    return this.#logs.tail(count);
  }
}

/**
 * Reads a workload process's stdout and stderr line by line into its log ring and the agent log
 * (`instance output`); resolves when both streams end.
 */
async function captureOutput(child: Deno.ChildProcess, logs: LogRing, log: Logger): Promise<void> {
  const pump = async (stream: ReadableStream<Uint8Array>, name: LogLine["stream"]) => {
    let buffer = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      buffer += text;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        logs.push(name, line);
        log.info("instance output", { stream: name, line });
      }
    }
    if (buffer) logs.push(name, buffer);
  };
  await Promise.all([pump(child.stdout, "stdout"), pump(child.stderr, "stderr")]);
}

/** What to do after a supervised process exited: restart after `restartInMs`, or give up. */
type CrashVerdict = { restartInMs: number } | { giveUp: string };

/**
 * Records a crash at `now` in `history` (kept to the window, changed in place) and decides:
 * restart with backoff, or give up on the third crash within a minute (the reason names it).
 */
function recordCrash(history: number[], code: number | null, now = Date.now()): CrashVerdict {
  const recent = history.filter((t) => now - t < CRASH_WINDOW_MS);
  history.splice(0, history.length, ...recent, now);
  if (history.length >= MAX_CRASHES) {
    return {
      giveUp: `crashed ${history.length} times within ${CRASH_WINDOW_MS / 1000} s (last exit code ${
        code ?? "unknown: adopted"
      })`,
    };
  }
  return {
    restartInMs: RESTART_BACKOFF_MS[Math.min(history.length - 1, RESTART_BACKOFF_MS.length - 1)]!,
  };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
async function terminate(child: Deno.ChildProcess, graceMs: number): Promise<void> {
  const send = (signal: Deno.Signal) => {
    try {
      child.kill(signal);
    } catch {
      // already exited
    }
  };
  send("SIGTERM");
  const killer = setTimeout(() => send("SIGKILL"), graceMs);
  try {
    await child.status;
  } finally {
    clearTimeout(killer);
  }
}
