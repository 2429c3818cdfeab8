/**
 * @module
 * `/loam/infer/1`'s framing: length-prefixed frames, each a tag byte and its payload. The
 * entry node sends `offer` (a signed envelope) and the request body as `body` frames; the
 * executor reads the body only once it takes the offer, sends `answer` (taken, or refused and
 * closed), then `head` (status, headers), the HTTP answer's bytes as `data` frames, then
 * `receipt` (signed), or `failure` when the work broke after the head. After a receipt the
 * executor sends `ready` and waits for the stream's next `offer`, so one stream carries job after
 * job; either side may end it instead.
 */

import type { Stream } from "@libp2p/interface";
import { lpStream } from "@libp2p/utils";
import { parseBoundedJson } from "../protocol/bounded_json.ts";
import { concatBytes } from "../system/bytes.ts";

/** The stream protocol jobs travel on. */
export const INFER_PROTOCOL = "/loam/infer/1";

const TAGS = {
  offer: 1,
  answer: 2,
  body: 3,
  head: 4,
  data: 5,
  receipt: 6,
  failure: 7,
  ready: 8,
} as const;

/** What a frame carries. */
export type FrameKind = keyof typeof TAGS;

const KINDS = new Map(Object.entries(TAGS).map(([k, v]) => [v, k as FrameKind]));

/**
 * How long an executor waits for the next offer on a stream: entry nodes keep streams open per
 * peer (infer_streams.ts) and use one only while it has been idle for less than this.
 */
export const SPARE_IDLE_MS = 60_000;

/** Largest payload in one frame; bodies and answers are cut into frames of this size. */
export const FRAME_BYTES = 256 * 1024;

/**
 * How long answer bytes wait to share a frame: a frame per token costs more than the token at
 * thousands of tokens a second, while the first bytes of an answer go at once.
 */
const COALESCE_MS = 10;

/** A frame received. */
export interface Frame {
  kind: FrameKind;
  bytes: Uint8Array;
}

/** One frame as it travels in a length-prefixed message: its tag byte, then its payload. */
export function encodeFrame(kind: FrameKind, bytes: Uint8Array): Uint8Array {
  const frame = new Uint8Array(bytes.length + 1);
  frame[0] = TAGS[kind];
  frame.set(bytes, 1);
  return frame;
}

/** A received message as a frame; throws on a tag this protocol does not have. */
export function decodeFrame(bytes: Uint8Array): Frame {
  const kind = KINDS.get(bytes[0] as typeof TAGS[FrameKind]);
  if (!kind) throw new Error(`unknown frame tag ${bytes[0]}`);
  return { kind, bytes: bytes.subarray(1) };
}

/** Both ends of `/loam/infer/1` read and write frames through this. */
export class InferChannel {
  readonly #stream: Stream;
  readonly #lp: ReturnType<typeof lpStream>;

  constructor(stream: Stream) {
    this.#stream = stream;
    this.#lp = lpStream(stream, { maxDataLength: FRAME_BYTES + 1 });
  }

  /** Sends one frame. */
  async write(kind: FrameKind, bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
    await this.#lp.write(encodeFrame(kind, bytes), signal ? { signal } : undefined);
  }

  /** Sends a JSON value as one frame. */
  writeJson(kind: FrameKind, value: unknown, signal?: AbortSignal): Promise<void> {
    return this.write(kind, new TextEncoder().encode(JSON.stringify(value)), signal);
  }

  /** The next frame; throws when the stream ends or carries an unknown tag. */
  async read(signal?: AbortSignal): Promise<Frame> {
    return decodeFrame((await this.#lp.read(signal ? { signal } : undefined)).subarray());
  }

  /** The next frame, which must be `kind`, parsed as JSON (of at most 64 KiB). */
  async readJson(kind: FrameKind, signal?: AbortSignal): Promise<unknown> {
    const frame = await this.read(signal);
    if (frame.kind !== kind) throw new Error(`expected a ${kind} frame, got ${frame.kind}`);
    return jsonOfFrame(frame);
  }

  /** Sends bytes as `kind` frames of at most {@link FRAME_BYTES}. */
  async writeChunked(kind: FrameKind, bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
    for (let at = 0; at < bytes.length; at += FRAME_BYTES) {
      await this.write(kind, bytes.subarray(at, at + FRAME_BYTES), signal);
    }
  }

  /**
   * Sends an answer body as `data` frames while it is produced: the first bytes at once, later
   * ones gathered for up to {@link COALESCE_MS}. Resolves with the bytes sent.
   */
  async writeStream(body: ReadableStream<Uint8Array> | null): Promise<number> {
    if (!body) return 0;
    const reader = body.getReader();
    let pending: Uint8Array[] = [];
    let size = 0;
    let total = 0;
    let last = -Infinity;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let writing = Promise.resolve();
    let failed = false;
    const flush = () => {
      clearTimeout(timer);
      timer = undefined;
      if (size === 0) return;
      const data = concatBytes(pending, size);
      pending = [];
      size = 0;
      last = performance.now();
      writing = writing.then(() => this.writeChunked("data", data));
      writing.catch(() => {
        failed = true;
        reader.cancel().catch(() => {});
      });
    };
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done || failed) break;
        pending.push(value);
        size += value.length;
        total += value.length;
        const since = performance.now() - last;
        if (size >= FRAME_BYTES || since >= COALESCE_MS) flush();
        else timer ??= setTimeout(flush, COALESCE_MS - since);
      }
    } finally {
      flush();
    }
    await writing;
    return total;
  }

  /** Open both ways: the stream may carry another job. */
  get usable(): boolean {
    return this.#stream.status === "open" && this.#stream.remoteWriteStatus === "writable" &&
      this.#stream.writeStatus === "writable";
  }

  /** Ends this side gracefully. */
  async close(): Promise<void> {
    await this.#stream.close();
  }

  /** Ends the stream at once (both sides). */
  abort(reason: Error): void {
    this.#stream.abort(reason);
  }
}

/** A frame's payload as JSON, held to 64 KiB and the agent's depth limit. */
export function jsonOfFrame(frame: Frame): unknown {
  return parseBoundedJson(new TextDecoder().decode(frame.bytes), { maxBytes: 64 * 1024 });
}
