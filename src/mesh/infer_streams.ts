import { peerIdFromString } from "@libp2p/peer-id";
import type { MeshNode } from "./node.ts";
import { INFER_PROTOCOL, InferChannel, SPARE_IDLE_MS } from "./infer_protocol.ts";

/** An idle stream is used only this long: the executor drops one idle longer. */
const SPARE_USABLE_MS = SPARE_IDLE_MS - 10_000;
/** How long opening one stream may take. */
const OPEN_TIMEOUT_MS = 10_000;
/** Idle streams kept per peer (as many as jobs that ran there at once, up to this). */
const IDLE_PER_PEER = 8;

interface Idle {
  channel: InferChannel;
  since: number;
}

/** What this node holds toward one peer. */
interface PeerStreams {
  /** Negotiated and waiting for a job, the newest last. */
  idle: Idle[];
  /** Opening in the background. */
  opening?: Promise<InferChannel>;
  /** Jobs done whose executor has not yet said `ready` (or closed). */
  returning: number;
}

/**
 * The `/loam/infer/1` streams kept open per peer, so a job does not wait for a new one: opening
 * a stream costs each side a peer-store write in libp2p (~3-4 ms a job on a small box, most of a
 * routed ONNX call's overhead). A stream whose job ended cleanly carries the next one once the
 * executor sends `ready` ({@link keep}); an executor that closes instead (an older loam) is
 * simply not reused. With none idle, one is opened once a job has ended ({@link replenish}), not
 * while it runs: opened alongside, its negotiation shared both nodes' event loops with the job
 * and cost it ~1 ms to first token.
 */
export class SpareStreams {
  readonly #node: MeshNode;
  readonly #peers = new Map<string, PeerStreams>();

  constructor(node: MeshNode) {
    this.#node = node;
  }

  /** A negotiated stream to `peer`: an idle one when one is fresh, else a new one. */
  async take(peer: string, signal: AbortSignal): Promise<InferChannel> {
    const streams = this.#of(peer);
    for (let idle = streams.idle.pop(); idle; idle = streams.idle.pop()) {
      if (Date.now() - idle.since < SPARE_USABLE_MS && idle.channel.usable) return idle.channel;
      idle.channel.abort(new Error("an idle stream that went stale"));
    }
    const opening = streams.opening;
    streams.opening = undefined;
    const spare = await opening?.catch(() => undefined);
    if (spare?.usable) return spare;
    signal.throwIfAborted();
    return await this.#open(peer, signal);
  }

  /**
   * Takes back `channel` after its job's receipt: once the executor says `ready` it waits for
   * the next job to `peer`; anything else ends it, and a new one is opened in its place.
   */
  keep(peer: string, channel: InferChannel): void {
    const streams = this.#of(peer);
    streams.returning++;
    const ended = (why: string) => {
      streams.returning--;
      channel.abort(new Error(why));
      this.replenish(peer);
    };
    channel.read(AbortSignal.timeout(OPEN_TIMEOUT_MS)).then((frame) => {
      if (frame.kind !== "ready") return ended(`expected ready, got ${frame.kind}`);
      streams.returning--;
      if (streams.idle.length >= IDLE_PER_PEER) return channel.abort(new Error("enough idle"));
      streams.idle.push({ channel, since: Date.now() });
    }, () => ended("the executor took no further job"));
  }

  /** Opens a stream to `peer` in the background, unless one is idle, coming back or opening. */
  replenish(peer: string): void {
    const streams = this.#of(peer);
    const fresh = streams.idle.some((i) => Date.now() - i.since < SPARE_USABLE_MS);
    if (fresh || streams.returning > 0 || streams.opening) return;
    const next = this.#open(peer);
    streams.opening = next;
    next.catch(() => {
      if (streams.opening === next) streams.opening = undefined;
    });
  }

  #of(peer: string): PeerStreams {
    let streams = this.#peers.get(peer);
    if (!streams) {
      streams = { idle: [], returning: 0 };
      this.#peers.set(peer, streams);
    }
    return streams;
  }

  async #open(peer: string, signal?: AbortSignal): Promise<InferChannel> {
    const timeout = AbortSignal.timeout(OPEN_TIMEOUT_MS);
    const stream = await this.#node.dialProtocol(peerIdFromString(peer), INFER_PROTOCOL, {
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
    return new InferChannel(stream);
  }
}
