import type { LogLine, LogRing } from "./log_ring.ts";
import type { Logger } from "../system/logger.ts";

/**
 * Reads a workload process's stdout and stderr line by line into its log ring and the agent log
 * (`instance output`); resolves when both streams end.
 */
export async function captureOutput(
  child: Deno.ChildProcess,
  logs: LogRing,
  log: Logger,
): Promise<void> {
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

/** This many crashes within the window mark an instance failed (like Greengrass's BROKEN). */
const MAX_CRASHES = 3;
const CRASH_WINDOW_MS = 60_000;
const RESTART_BACKOFF_MS = [500, 1000, 2000];

/** What to do after a supervised process exited: restart after `restartInMs`, or give up. */
export type CrashVerdict = { restartInMs: number } | { giveUp: string };

/**
 * Records a crash at `now` in `history` (kept to the window, changed in place) and decides:
 * restart with backoff, or give up on the third crash within a minute (the reason names it).
 */
export function recordCrash(history: number[], code: number, now = Date.now()): CrashVerdict {
  const recent = history.filter((t) => now - t < CRASH_WINDOW_MS);
  history.splice(0, history.length, ...recent, now);
  if (history.length >= MAX_CRASHES) {
    return {
      giveUp: `crashed ${history.length} times within ${
        CRASH_WINDOW_MS / 1000
      } s (last exit code ${code})`,
    };
  }
  return {
    restartInMs: RESTART_BACKOFF_MS[Math.min(history.length - 1, RESTART_BACKOFF_MS.length - 1)]!,
  };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export async function terminate(child: Deno.ChildProcess, graceMs: number): Promise<void> {
  try {
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await child.status;
    clearTimeout(killer);
  } catch {
    // already gone
  }
}
