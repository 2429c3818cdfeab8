import { peerIdFromString } from "@libp2p/peer-id";
import type { Stream } from "@libp2p/interface";
import type { MeshNode } from "./node.ts";
import { INFER_PROTOCOL, SPARE_IDLE_MS } from "./infer_protocol.ts";

/** A spare is used only this long after it opened: the executor drops one idle longer. */
const SPARE_USABLE_MS = SPARE_IDLE_MS - 10_000;
/** How long opening one stream may take. */
const OPEN_TIMEOUT_MS = 10_000;

interface Spare {
  stream: Promise<Stream>;
  openedAt: number;
}

/**
 * One `/loam/infer/1` stream kept open and negotiated per peer jobs went to, so the next job
 * does not wait for a new one: opening a stream costs each side a peer-store write in libp2p
 * (~3-4 ms a job on a small box, most of a routed ONNX call's overhead). The next spare is
 * opened once a job has ended ({@link replenish}), not while it runs: opened alongside, its
 * negotiation shared both nodes' event loops with the job and cost it ~1 ms to first token.
 */
export class SpareStreams {
  readonly #node: MeshNode;
  readonly #spares = new Map<string, Spare>();

  constructor(node: MeshNode) {
    this.#node = node;
  }

  /** A negotiated stream to `peer`: its spare when one is ready and fresh, else a new one. */
  async take(peer: string, signal: AbortSignal): Promise<Stream> {
    const spare = this.#spares.get(peer);
    this.#spares.delete(peer);
    if (spare && Date.now() - spare.openedAt < SPARE_USABLE_MS) {
      const stream = await spare.stream.catch(() => undefined);
      if (stream?.status === "open" && stream.remoteWriteStatus === "writable") return stream;
      stream?.abort(new Error("a spare that went stale"));
    } else {
      void spare?.stream.then((s) => s.abort(new Error("spare unused")), () => {});
    }
    signal.throwIfAborted();
    return await this.#open(peer, signal);
  }

  /** Opens a spare to `peer` in the background, unless a fresh one is there already. */
  replenish(peer: string): void {
    const spare = this.#spares.get(peer);
    if (spare && Date.now() - spare.openedAt < SPARE_USABLE_MS) return;
    void spare?.stream.then((s) => s.abort(new Error("spare unused")), () => {});
    const next = this.#open(peer);
    this.#spares.set(peer, { stream: next, openedAt: Date.now() });
    next.catch(() => {
      if (this.#spares.get(peer)?.stream === next) this.#spares.delete(peer);
    });
  }

  #open(peer: string, signal?: AbortSignal): Promise<Stream> {
    const timeout = AbortSignal.timeout(OPEN_TIMEOUT_MS);
    return this.#node.dialProtocol(peerIdFromString(peer), INFER_PROTOCOL, {
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
  }
}
