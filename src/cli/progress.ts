// @ts-types="@types/cli-progress"
import cliProgress from "cli-progress";
import process from "node:process";
import type { FetchProgress } from "../blobs/fetcher.ts";

/** Shows download progress to a person. */
export interface ProgressReporter {
  update(progress: FetchProgress): void;
  stop(): void;
}

/** Plain lines are printed at most this often when stderr is not a terminal. */
const PLAIN_INTERVAL_MS = 5000;

function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}

function plainLine(p: FetchProgress): string {
  const percent = p.total ? ` ${Math.floor((p.bytes / p.total) * 100)}%` : "";
  const of = p.total ? `/${mib(p.total)}` : "";
  return `fetch sha256:${p.sha256.slice(0, 12)}${percent} ${mib(p.bytes)}${of} MiB ${
    mib(p.rate_bps)
  } MiB/s`;
}

/**
 * A progress bar (cli-progress) on a terminal; otherwise a plain line every 5 s and at 10%
 * steps, so logs of a non-interactive run stay readable.
 */
export function createProgressReporter(): ProgressReporter {
  if (Deno.stderr.isTerminal()) {
    const bar = new cliProgress.SingleBar({
      stream: process.stderr,
      format: "{bar} {percentage}% | {done}/{size} MiB | {rate} MiB/s | ETA {eta_formatted}",
      hideCursor: true,
    }, cliProgress.Presets.shades_classic);
    let started = false;
    return {
      update(p) {
        const total = p.total ?? p.bytes;
        const payload = {
          done: mib(p.bytes),
          size: p.total ? mib(p.total) : "?",
          rate: mib(p.rate_bps),
        };
        if (!started) {
          bar.start(total, p.bytes, payload);
          started = true;
        }
        bar.setTotal(total);
        bar.update(p.bytes, payload);
      },
      stop() {
        if (started) bar.stop();
        started = false;
      },
    };
  }
  let lastAt = 0;
  let lastDecile = -1;
  return {
    update(p) {
      const decile = p.total ? Math.floor((p.bytes / p.total) * 10) : -1;
      const now = performance.now();
      if (decile === lastDecile && now - lastAt < PLAIN_INTERVAL_MS) return;
      lastDecile = decile;
      lastAt = now;
      console.error(plainLine(p));
    },
    stop() {},
  };
}
