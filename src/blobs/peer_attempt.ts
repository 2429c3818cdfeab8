import { type AttemptContext, AttemptError, copyChunks, guardedAttempt } from "./attempt.ts";

/** A blob stream opened on a peer, from the requested offset. */
export interface PeerBlobStream {
  /** The blob's full size as the peer reports it. */
  size: number;
  chunks: AsyncIterable<Uint8Array>;
}

/** Where peer-held blobs come from (implemented by the mesh). */
export interface PeerSource {
  /**
   * Peer ids that hold the verified blob `hex`, best first, leaving out `exclude`. `search`
   * allows a slower lookup (the DHT) when the quick one (adverts) names nobody.
   */
  holders(
    hex: string,
    exclude: Set<string>,
    search: boolean,
    signal: AbortSignal,
  ): Promise<string[]>;
  /**
   * Opens `hex` on `peer` from `offset`. Throws {@link AttemptError} "permanent" when the
   * peer does not hold it; other errors count as transient.
   */
  open(peer: string, hex: string, offset: number, signal: AbortSignal): Promise<PeerBlobStream>;
}

/** Inputs of one attempt against a peer. */
export interface PeerAttemptOptions extends AttemptContext {
  source: PeerSource;
  peer: string;
  hex: string;
}

/** Streams a blob from one peer into the partial, resuming from the bytes already there. */
export function peerAttempt(o: PeerAttemptOptions): Promise<void> {
  return guardedAttempt(o, async (guard) => {
    const offset = o.partial.size;
    const opened = await o.source.open(o.peer, o.hex, offset, guard.signal);
    guard.alive();
    if (o.expectedSize !== undefined && opened.size !== o.expectedSize) {
      throw new AttemptError(
        "permanent",
        `peer says the blob is ${opened.size} bytes, expected ${o.expectedSize}`,
      );
    }
    o.checkSpace(opened.size - offset);
    await copyChunks(opened.chunks, opened.size, o, guard);
  });
}
