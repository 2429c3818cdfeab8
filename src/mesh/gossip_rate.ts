/**
 * `mesh.limits.gossip_per_second`: a token bucket per forwarding peer, checked before a gossip
 * message is decoded or its signature verified, so that one member sending as fast as it can
 * costs the node little and cannot push out everyone else's messages. A legitimate relay's bursts
 * (a fleet-wide deployment's statuses) fit in the bucket: it holds ten seconds' worth.
 * @module
 */

/** Seconds of the rate a quiet peer may send at once. */
const BURST_SECONDS = 10;
/** Peers tracked; past that, the buckets start again (a flood of new ids gains nothing). */
const MAX_PEERS = 4096;

/** Per-peer message budgets. */
export class GossipRateLimit {
  readonly #perSecond: number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  /** `perSecond` 0 = no limit. */
  constructor(perSecond: number) {
    this.#perSecond = perSecond;
  }

  /** Takes one message from `peer`'s budget; false when it is spent (the message is ignored). */
  take(peer: string, now = performance.now()): boolean {
    if (this.#perSecond === 0) return true;
    const burst = this.#perSecond * BURST_SECONDS;
    let bucket = this.#buckets.get(peer);
    if (!bucket) {
      if (this.#buckets.size >= MAX_PEERS) this.#buckets.clear();
      bucket = { tokens: burst, at: now };
      this.#buckets.set(peer, bucket);
    }
    bucket.tokens = Math.min(burst, bucket.tokens + (now - bucket.at) / 1000 * this.#perSecond);
    bucket.at = now;
    if (bucket.tokens < 1) return false;
    bucket.tokens--;
    return true;
  }
}
