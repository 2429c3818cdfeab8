/**
 * @module
 * Length-prefixed JSON messages on the direct protocols (`/loam/directives-sync/1`,
 * `/loam/registry-sync/1`, `/loam/deployment-status/1`). A message is read within a size limit
 * and checked by its schema; the error names the first bad field. A request found bad is
 * answered with `{"error": {"message"}}` before the stream ends, so the peer learns what was
 * wrong rather than seeing a bare reset. A peer's refusal read here becomes an error carrying
 * its message.
 */
import { type LengthPrefixedStream, lpStream } from "@libp2p/utils";
import type { Stream } from "@libp2p/interface";
import { z } from "zod";
import { parseBoundedJson } from "../protocol/bounded_json.ts";

/** Longest refusal message sent or read. */
const MAX_REFUSAL_CHARS = 1024;

const RefusalSchema = z.strictObject({
  error: z.strictObject({ message: z.string().max(MAX_REFUSAL_CHARS) }),
});

/** One stream's JSON messages, each bounded by `maxBytes` and the call's `signal`. */
export class JsonMessages {
  readonly #stream: Stream;
  readonly #lp: LengthPrefixedStream;
  readonly #maxBytes: number;
  readonly #signal: AbortSignal;

  constructor(stream: Stream, maxBytes: number, signal: AbortSignal) {
    this.#stream = stream;
    this.#lp = lpStream(stream, { maxDataLength: maxBytes });
    this.#maxBytes = maxBytes;
    this.#signal = signal;
  }

  /** Sends `message` as JSON. */
  async send(message: unknown): Promise<void> {
    await this.#lp.write(new TextEncoder().encode(JSON.stringify(message)), {
      signal: this.#signal,
    });
  }

  /**
   * The next message, checked by `schema`. Throws naming the first bad field, or with the
   * peer's own message when it refused.
   */
  async receive<S extends z.ZodType>(schema: S): Promise<z.infer<S>> {
    const bytes = await this.#lp.read({ signal: this.#signal });
    const value = parseBoundedJson(new TextDecoder().decode(bytes.subarray()), {
      maxBytes: this.#maxBytes,
    });
    const parsed = schema.safeParse(value);
    if (parsed.success) return parsed.data;
    const refusal = RefusalSchema.safeParse(value);
    if (refusal.success) throw new Error(`the peer refused: ${refusal.data.error.message}`);
    const issue = parsed.error.issues[0]!;
    throw new Error(`${issue.path.join(".") || "message"}: ${issue.message}`);
  }

  /** Answers a bad request with why, then ends the stream (at once when that cannot be sent). */
  async refuse(err: unknown): Promise<void> {
    const message = (err instanceof Error ? err.message : String(err)).slice(0, MAX_REFUSAL_CHARS);
    try {
      await this.send({ error: { message } });
      await this.#stream.close({ signal: this.#signal });
    } catch {
      this.#stream.abort(err instanceof Error ? err : new Error(message));
    }
  }
}
