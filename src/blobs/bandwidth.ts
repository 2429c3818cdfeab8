import { sleep } from "../system/sleep.ts";

/** Burst a limited stream may run ahead of its average rate. */
const BURST_MS = 50;

/**
 * Caps the combined rate of every download sharing this limiter (a metered link's budget):
 * each chunk books time on a virtual clock and waits until its slot.
 */
export class BandwidthLimiter {
  readonly #bytesPerSecond: number;
  #nextFree = 0;

  /** `bytesPerSecond` 0 means unlimited. */
  constructor(bytesPerSecond: number) {
    this.#bytesPerSecond = bytesPerSecond;
  }

  /** Waits until `bytes` more may pass. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.#bytesPerSecond <= 0) return;
    const now = performance.now();
    const start = Math.max(now, this.#nextFree);
    this.#nextFree = start + (bytes / this.#bytesPerSecond) * 1000;
    const wait = this.#nextFree - now - BURST_MS;
    if (wait > 0) await sleep(wait, signal);
  }
}
