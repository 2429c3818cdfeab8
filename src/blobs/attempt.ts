import { type PartialDownload, PartialWriteError } from "./partial.ts";
import type { BandwidthLimiter } from "./bandwidth.ts";
import { isDiskFull } from "../system/disk.ts";

/** How bad a failed attempt is: retry later, give up on this source, or stop the whole fetch. */
export type FailureKind = "transient" | "permanent" | "fatal";

/** A failed download attempt. */
export class AttemptError extends Error {
  readonly kind: FailureKind;
  /** Source-requested delay (Retry-After) before trying again, if any. */
  readonly retryAfterMs?: number;

  constructor(kind: FailureKind, message: string, retryAfterMs?: number) {
    super(message);
    this.name = "AttemptError";
    this.kind = kind;
    this.retryAfterMs = retryAfterMs;
  }
}

/** What every attempt, whatever its source, works with. */
export interface AttemptContext {
  partial: PartialDownload;
  /** Declared size of the blob, if known. */
  expectedSize?: number;
  /** Aborts the whole fetch (overall timeout). */
  signal: AbortSignal;
  stallMs: number;
  limiter: BandwidthLimiter;
  /** Throws (fatal) when `bytes` more would not fit on disk. */
  checkSpace(bytes: number): void;
  onBytes(bytes: number): void;
  /** Notes a restart from zero and why. */
  onRestart(reason: string): void;
}

/** Why the whole fetch was aborted: its overall timeout, or the fetcher being closed. */
export function abortMessage(signal: AbortSignal): string {
  const reason = signal.reason;
  if (reason instanceof DOMException && reason.name === "TimeoutError") {
    return "overall fetch timeout reached";
  }
  return reason instanceof Error ? reason.message : String(reason);
}

/** The signal an attempt passes to its I/O: the overall one, plus a stall timer to re-arm. */
export interface StallGuard {
  signal: AbortSignal;
  /** Call whenever data arrives. */
  alive(): void;
  /** Classifies any error thrown during the attempt. */
  explain(err: unknown): AttemptError;
  dispose(): void;
}

/** Arms a stall timer for one attempt (no data for `stallMs` aborts it as transient). */
function stallGuard(ctx: AttemptContext): StallGuard {
  const stall = new AbortController();
  let timer = setTimeout(() => stall.abort(), ctx.stallMs);
  return {
    signal: AbortSignal.any([ctx.signal, stall.signal]),
    alive() {
      clearTimeout(timer);
      timer = setTimeout(() => stall.abort(), ctx.stallMs);
    },
    explain(err) {
      if (err instanceof AttemptError) return err;
      if (ctx.signal.aborted) return new AttemptError("fatal", abortMessage(ctx.signal));
      if (stall.signal.aborted) {
        return new AttemptError("transient", `no data for ${ctx.stallMs / 1000} s (stalled)`);
      }
      if (err instanceof PartialWriteError) {
        const full = isDiskFull(err.cause);
        const path = ctx.partial.path;
        return new AttemptError("fatal", full ? `disk full while writing ${path}` : err.message);
      }
      const cause = (err as Error).cause;
      const message = cause instanceof Error
        ? cause.message
        : String((err as Error).message ?? err);
      const kind = /certificate|tls|ssl|handshake/i.test(message) ? "permanent" : "transient";
      return new AttemptError(kind, message);
    },
    dispose: () => clearTimeout(timer),
  };
}

/**
 * Runs one attempt under a stall guard. On a non-fatal failure what arrived is flushed to disk,
 * so the next attempt resumes from `partial.size`.
 */
export async function guardedAttempt(
  ctx: AttemptContext,
  body: (guard: StallGuard) => Promise<void>,
): Promise<void> {
  const guard = stallGuard(ctx);
  try {
    await body(guard);
  } catch (err) {
    let error = guard.explain(err);
    if (error.kind !== "fatal") {
      await ctx.partial.flush().catch((flushError) => error = guard.explain(flushError));
    }
    throw error;
  } finally {
    guard.dispose();
  }
}

/**
 * Copies chunks into the partial (hashing as they land), refusing bytes past `limit`, then
 * flushes and checks that nothing is missing.
 */
export async function copyChunks(
  chunks: AsyncIterable<Uint8Array>,
  limit: number | undefined,
  ctx: AttemptContext,
  guard: StallGuard,
): Promise<void> {
  for await (const chunk of chunks) {
    guard.alive();
    if (limit !== undefined && ctx.partial.size + chunk.length > limit) {
      await ctx.partial.reset();
      const what = ctx.expectedSize !== undefined ? "declared" : "announced";
      throw new AttemptError("permanent", `source sent more than the ${limit} bytes ${what}`);
    }
    await ctx.limiter.take(chunk.length, guard.signal);
    ctx.partial.append(chunk);
    ctx.onBytes(chunk.length);
  }
  await ctx.partial.flush();
  if (limit !== undefined && ctx.partial.size < limit) {
    throw new AttemptError(
      "transient",
      `connection closed after ${ctx.partial.size} of ${limit} bytes`,
    );
  }
}
