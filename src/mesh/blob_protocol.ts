import { z } from "zod";
import { parseBoundedJson } from "../protocol/bounded_json.ts";
import { lpStream } from "@libp2p/utils";
import { peerIdFromString } from "@libp2p/peer-id";
import { Counter, type Registry } from "prom-client";
import type { MeshNode } from "./node.ts";
import type { BlobStore } from "../blobs/store.ts";
import { AttemptError } from "../blobs/attempt.ts";
import type { PeerBlobStream } from "../blobs/peer_attempt.ts";
import type { Logger } from "../system/logger.ts";
import { pacedChunks, sendPaced } from "./stream_pacing.ts";

/** The peer-to-peer blob transfer protocol. */
export const BLOB_PROTOCOL = "/loam/blob/1.0.0";

/** Bytes per message on the stream: large enough that framing costs nothing. */
const CHUNK = 256 * 1024;
const MAX_HEADER_BYTES = 4096;
/** Received bytes held for a slower consumer (hashing, disk) before the sender is paused. */
const READ_AHEAD = 8 * 1024 * 1024;
/** How long a peer has to accept a blob request and answer its header. */
const PEER_ANSWER_TIMEOUT_MS = 10_000;

const BlobRequestSchema = z.strictObject({
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  offset: z.number().int().min(0),
});

const BlobResponseSchema = z.union([
  z.strictObject({ ok: z.literal(true), size: z.number().int().min(0) }),
  z.strictObject({ ok: z.literal(false), error: z.string() }),
]);

const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const decode = (bytes: { subarray(): Uint8Array }) =>
  parseBoundedJson(new TextDecoder().decode(bytes.subarray()), { maxBytes: MAX_HEADER_BYTES });

/** A holder's answer when the asking peer already has its share of transfers open. */
const BUSY = "busy: too many blob transfers open from this peer";

/**
 * Serves verified blobs from the store: request `{sha256, offset}` (length-prefixed JSON),
 * answer `{ok, size}` then the raw bytes from `offset`, sent with back-pressure. Only committed
 * blobs exist in the store, so nothing unverified can be served.
 */
export async function serveBlobs(
  node: MeshNode,
  store: BlobStore,
  registry: Registry,
  logger: Logger,
  limits: { maxStreamsPerPeer: number },
): Promise<void> {
  const served = new Counter({
    name: "loam_blob_bytes_served_total",
    help: "Blob bytes sent to peers.",
    registers: [registry],
  });
  const refused = new Counter({
    name: "loam_blob_streams_refused_total",
    help: "Blob requests answered busy: the peer had mesh.limits.blob_streams_per_peer open.",
    registers: [registry],
  });
  const open = new Map<string, number>();
  await node.handle(BLOB_PROTOCOL, async (stream, connection) => {
    const peer = connection.remotePeer.toString();
    const lp = lpStream(stream, { maxDataLength: MAX_HEADER_BYTES });
    const mine = (open.get(peer) ?? 0) + 1;
    if (mine > limits.maxStreamsPerPeer) {
      refused.inc();
      try {
        await lp.write(encode({ ok: false, error: BUSY }));
        await stream.close();
      } catch {
        // the peer went away: nothing to answer
      }
      return;
    }
    open.set(peer, mine);
    let file: Deno.FsFile | undefined;
    try {
      const request = BlobRequestSchema.safeParse(
        decode(await lp.read({ signal: AbortSignal.timeout(10_000) })),
      );
      if (!request.success) {
        await lp.write(encode({ ok: false, error: "bad request" }));
        return await stream.close();
      }
      const { sha256, offset } = request.data;
      file = await Deno.open(store.pathOf(sha256)).catch(() => undefined);
      const size = file ? (await file.stat()).size : 0;
      if (!file || offset > size) {
        await lp.write(encode({ ok: false, error: file ? "offset past the end" : "not found" }));
        return await stream.close();
      }
      await lp.write(encode({ ok: true, size }));
      const raw = lp.unwrap();
      await file.seek(offset, Deno.SeekMode.Start);
      logger.debug("serving blob", { peer, sha256, offset, size });
      for (;;) {
        // send() may keep a buffer queued even when it returns true: never refill one
        const chunk = new Uint8Array(CHUNK);
        const n = await file.read(chunk);
        if (n === null) break;
        served.inc(n);
        await sendPaced(raw, chunk.subarray(0, n));
      }
      await raw.close();
    } catch (err) {
      logger.debug("blob transfer to peer ended early", { peer, error: err });
      stream.abort(err as Error);
    } finally {
      file?.close();
      const left = (open.get(peer) ?? 1) - 1;
      if (left > 0) open.set(peer, left);
      else open.delete(peer);
    }
  }, { maxInboundStreams: limits.maxStreamsPerPeer + 1 });
}

/** Opens blob `hex` on `peer` from `offset` ({@link PeerSource.open}). */
export async function openPeerBlob(
  node: MeshNode,
  peer: string,
  hex: string,
  offset: number,
  signal: AbortSignal,
): Promise<PeerBlobStream> {
  // a peer that does not answer soon is passed over for the next source (not the stall limit)
  const answerBy = AbortSignal.any([signal, AbortSignal.timeout(PEER_ANSWER_TIMEOUT_MS)]);
  let stream: Awaited<ReturnType<MeshNode["dialProtocol"]>>;
  let header: Uint8Array;
  let lp: ReturnType<typeof lpStream>;
  try {
    stream = await node.dialProtocol(peerIdFromString(peer), BLOB_PROTOCOL, { signal: answerBy });
    lp = lpStream(stream, { maxDataLength: MAX_HEADER_BYTES });
    await lp.write(encode({ sha256: hex, offset }), { signal: answerBy });
    header = (await lp.read({ signal: answerBy })).subarray();
  } catch (err) {
    if (signal.aborted || !answerBy.aborted) throw err;
    throw new AttemptError(
      "transient",
      `peer did not answer within ${PEER_ANSWER_TIMEOUT_MS / 1000} s`,
    );
  }
  const answer = BlobResponseSchema.safeParse(decode(header));
  if (!answer.success) throw new AttemptError("permanent", "peer sent an invalid answer");
  if (!answer.data.ok) {
    await stream.close().catch(() => {});
    // busy is for now: the same holder may serve it later
    const kind = answer.data.error === BUSY ? "transient" : "permanent";
    throw new AttemptError(kind, `peer: ${answer.data.error}`);
  }
  const raw = lp.unwrap();
  signal.addEventListener("abort", () => raw.abort(new Error("aborted")), { once: true });
  return { size: answer.data.size, chunks: pacedChunks(raw, READ_AHEAD) };
}
