/**
 * @module
 * Length-prefixed JSON messages on the direct protocols (`/loam/directives-sync/1`,
 * `/loam/registry-sync/1`, `/loam/deployment-status/1`). A message is read within a size limit
 * and checked by its schema; the error names the first bad field. A request found bad is
 * answered with `{"error": {"message"}}` before the stream ends, so the peer learns what was
 * wrong rather than seeing a bare reset; any other failure is answered without its details
 * (paths, internals). A peer's refusal read here becomes an error carrying its message.
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

/** A message read that was not what the protocol expects: its text is safe to send back. */
export class BadMessageError extends Error {
  override name = "BadMessageError";
}

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
    let value: unknown;
    try {
      const bytes = await this.#lp.read({ signal: this.#signal });
      value = parseBoundedJson(new TextDecoder().decode(bytes.subarray()), {
        maxBytes: this.#maxBytes,
      });
    } catch (err) {
      throw new BadMessageError((err as Error).message, { cause: err });
    }
    const parsed = schema.safeParse(value);
    if (parsed.success) return parsed.data;
    const refusal = RefusalSchema.safeParse(value);
    if (refusal.success) throw new Error(`the peer refused: ${refusal.data.error.message}`);
    const issue = parsed.error.issues[0]!;
    throw new BadMessageError(`${issue.path.join(".") || "message"}: ${issue.message}`);
  }

  /**
   * Answers a failed request, with why when the request was bad, then ends the stream (at once
   * when that cannot be sent).
   */
  async refuse(err: unknown): Promise<void> {
    const message = err instanceof BadMessageError
      ? err.message.slice(0, MAX_REFUSAL_CHARS)
      : "the request failed on this node";
    try {
      await this.send({ error: { message } });
      await this.#stream.close({ signal: this.#signal });
    } catch {
      this.#stream.abort(err instanceof Error ? err : new Error(String(err)));
    }
  }
}
