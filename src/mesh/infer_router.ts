import type { PrivateKey } from "@libp2p/interface";
import type { Counter } from "prom-client";
import { openEnvelope, sealEnvelope } from "../protocol/envelope.ts";
import {
  InferAnswerSchema,
  InferHeadSchema,
  type InferOffer,
  type InferReceipt,
} from "../protocol/infer_job.ts";
import { createSha256 } from "../blobs/digest.ts";
import { HttpError } from "../system/http_error.ts";
import type { Logger } from "../system/logger.ts";
import { concatBytes } from "../system/bytes.ts";
import type { MeshNode } from "./node.ts";
import type { PeerModel, PeerTable } from "./peers.ts";
import type { JobLog } from "./job_log.ts";
import { SpareStreams } from "./infer_streams.ts";
import { type Frame, type InferChannel, jsonOfFrame } from "./infer_protocol.ts";

/** How long a peer has to answer an offer and to send its answer's head. */
const ANSWER_TIMEOUT_MS = 10_000;
/** Largest signed receipt. */
const MAX_RECEIPT_BYTES = 16 * 1024;

/** A job the local API hands over for a model that is not here, or whose queue is full. */
export interface RoutedJob {
  /** The route, e.g. `/v1/chat/completions`. */
  path: string;
  /** The name the client asked for. */
  model: string;
  body: Uint8Array;
  contentType: string;
  accept: string;
  /** The caller's token name. */
  client: string;
  /** Aborts when the client goes away. */
  signal: AbortSignal;
  /** `sha256:<hex>` of the model here, when there is one: peers must hold the same file. */
  localBlob?: string;
}

/** What routing needs from the mesh. */
export interface InferRouterOptions {
  node: MeshNode;
  peers: PeerTable;
  privateKey: PrivateKey;
  /** `jobs.timeout_seconds`, in ms: the offer's deadline. */
  timeoutMs: number;
  jobs: JobLog;
  /** `loam_fleet_jobs_total`; this counts `local` and `forwarded`. */
  counter: Counter<"where">;
  logger: Logger;
}

/** One try on one holder. */
type Attempt =
  | { kind: "answer"; response: Response }
  | { kind: "refused"; reason: string; message: string; retryAfter?: number }
  | { kind: "lost"; message: string };

const STREAMED = /^(text\/event-stream|application\/x-ndjson)/;

/**
 * Sends jobs to the peer that runs their model (`/loam/infer/1`): the least expected wait first
 * (its advertised queue plus this node's own jobs in flight there), then the lowest RTT; only
 * to instances of the file the name first resolved to. A refusal or a stream lost before any
 * output tries the next holder; once output has gone to the client, a break ends the answer
 * with an error event instead (never a token twice). The executor's signed receipt is verified
 * and kept in the job log (while the client reads the answer: it ends every stream, and a
 * signature check costs more than a small model's call).
 */
export class InferRouter {
  readonly #o: InferRouterOptions;
  /** The file each name first resolved to. */
  readonly #bound = new Map<string, string>();
  /** This node's jobs in flight, per peer. */
  readonly #inFlight = new Map<string, number>();
  readonly #spares: SpareStreams;

  constructor(options: InferRouterOptions) {
    this.#o = options;
    this.#spares = new SpareStreams(options.node);
  }

  /** A routable job ran on this node (`loam_fleet_jobs_total{where="local"}`). */
  ranLocally(): void {
    this.#o.counter.inc({ where: "local" });
  }

  /**
   * Runs `job` on the best connected peer serving its model; undefined when none does. Every
   * holder busy is a 429 with Retry-After; every holder failing, a 502 naming the last failure.
   */
  async forward(job: RoutedJob): Promise<Response | undefined> {
    const holders = this.#holders(job);
    if (holders.length === 0) return undefined;
    const jobId = crypto.randomUUID();
    const bodySha256 = createSha256().update(job.body).digest("hex"); // once for every holder tried
    let retryAfter: number | undefined;
    let failure: string | undefined;
    for (const holder of holders) {
      const mine = this.#inFlight.get(holder.peer_id) ?? 0;
      if (mine >= holder.model.capacity) {
        retryAfter = Math.min(retryAfter ?? Infinity, 1);
        continue;
      }
      const attempt = await this.#attempt(holder, jobId, bodySha256, job);
      if (attempt.kind === "answer") return attempt.response;
      if (job.signal.aborted) throw new HttpError(499, "cancelled", "the client went away");
      this.#o.logger.debug("peer did not take the job", { peer: holder.peer_id, ...attempt });
      if (attempt.kind === "refused" && attempt.reason === "busy") {
        retryAfter = Math.min(retryAfter ?? Infinity, attempt.retryAfter ?? 1);
      } else if (attempt.kind === "lost" || attempt.reason !== "unknown_model") {
        failure = `${holder.node_id}: ${attempt.message}`;
      }
    }
    if (retryAfter !== undefined) {
      throw new HttpError(
        429,
        "fleet_busy",
        `every node running ${job.model} has a full queue; retry later`,
        { "retry-after": String(Math.max(1, retryAfter)) },
      );
    }
    if (failure) {
      throw new HttpError(502, "peer_failed", `no peer ran the job for ${job.model}: ${failure}`);
    }
    return undefined;
  }

  /** Connected holders of the job's model, of the bound file, best first. */
  #holders(job: RoutedJob): PeerModel[] {
    const all = this.#o.peers.models(job.model);
    const wait = (h: PeerModel) =>
      h.model.queued + h.model.running + (this.#inFlight.get(h.peer_id) ?? 0);
    all.sort((a, b) => wait(a) - wait(b) || a.rtt - b.rtt);
    let blob = job.localBlob ?? this.#bound.get(job.model);
    if (blob === undefined || !all.some((h) => h.model.blob_hash === blob)) {
      // first resolution here (or the file it was bound to is gone from the fleet)
      blob = job.localBlob ?? all[0]?.model.blob_hash;
    }
    if (blob === undefined) return [];
    this.#bound.set(job.model, blob);
    return all.filter((h) => h.model.blob_hash === blob);
  }

  async #attempt(
    holder: PeerModel,
    jobId: string,
    bodySha256: string,
    job: RoutedJob,
  ): Promise<Attempt> {
    const peer = holder.peer_id;
    this.#inFlight.set(peer, (this.#inFlight.get(peer) ?? 0) + 1);
    let channel: InferChannel | undefined;
    const onAbort = () => channel?.abort(new Error("the client went away"));
    job.signal.addEventListener("abort", onAbort, { once: true });
    let done = false;
    /** The job no longer holds its place with the peer, nor listens for the client. */
    const release = () => {
      if (done) return;
      done = true;
      job.signal.removeEventListener("abort", onAbort);
      const left = (this.#inFlight.get(peer) ?? 1) - 1;
      if (left > 0) this.#inFlight.set(peer, left);
      else this.#inFlight.delete(peer);
      this.#spares.replenish(peer);
    };
    const record = this.#o.jobs.start({
      job_id: jobId,
      model: job.model,
      blob_hash: holder.model.blob_hash,
      where: "forwarded",
      peer,
      client: job.client,
    });
    const end = (attempt: Attempt & { kind: "refused" | "lost" }): Attempt => {
      release();
      this.#o.jobs.finish(record, { status: null, error: attempt.message });
      channel?.abort(new Error(attempt.message));
      return attempt;
    };
    try {
      const answerBy = AbortSignal.any([job.signal, AbortSignal.timeout(ANSWER_TIMEOUT_MS)]);
      channel = await this.#spares.take(peer, answerBy);
      const offer: InferOffer = {
        job_id: jobId,
        model: job.model,
        blob_hash: holder.model.blob_hash,
        path: job.path,
        content_type: job.contentType,
        accept: job.accept,
        body_bytes: job.body.length,
        body_sha256: bodySha256,
        requester: this.#o.node.peerId.toString(),
        client: job.client,
        deadline: new Date(Date.now() + this.#o.timeoutMs).toISOString(),
      };
      const sealed = await sealEnvelope("infer_offer", offer, this.#o.privateKey, offer.requester);
      await channel.write("offer", sealed, answerBy);
      // the body follows at once, not after the answer (a round trip less); a refusing
      // executor closes without reading it, so a failed write here is no error of its own
      const sending = channel.writeChunked("body", job.body, answerBy).catch(() => {});
      const answer = InferAnswerSchema.parse(await channel.readJson("answer", answerBy));
      if (!answer.ok) {
        return end({
          kind: "refused",
          reason: answer.reason,
          message: answer.message,
          retryAfter: answer.retry_after,
        });
      }
      await sending;
      const head = InferHeadSchema.parse(await channel.readJson("head", answerBy));
      if (head.status === 429) {
        return end({ kind: "refused", reason: "busy", message: "its queue filled up" });
      }
      const ch = channel;
      /**
       * The answer is complete: the stream goes back for the next job, and the receipt is checked
       * and kept while the client has the answer.
       */
      const finish = (receiptFrame: Frame) => {
        this.#spares.keep(peer, ch);
        void this.#receipt(receiptFrame, peer, jobId).then(
          (receipt) => this.#o.jobs.finish(record, { status: head.status, receipt }),
          (err) => {
            this.#o.logger.warn("job receipt refused", { peer, job_id: jobId, error: err });
            this.#o.jobs.finish(record, { status: head.status, error: (err as Error).message });
          },
        );
      };
      const headers = new Headers(head.headers);
      headers.set("x-loam-job-id", jobId);
      headers.set("x-loam-served-by", peer);
      if (!STREAMED.test(head.headers["content-type"] ?? "")) {
        // held whole: a break before its end is a try on the next holder, unseen by the client
        const chunks: Uint8Array[] = [];
        let size = 0;
        for (;;) {
          const frame = await ch.read(job.signal);
          if (frame.kind === "data") {
            chunks.push(frame.bytes.slice());
            size += frame.bytes.length;
          } else if (frame.kind === "receipt") {
            finish(frame);
            break;
          } else throw new Error(failureOf(frame));
        }
        release();
        this.#o.counter.inc({ where: "forwarded" });
        return {
          kind: "answer",
          response: new Response(concatBytes(chunks, size), { status: head.status, headers }),
        };
      }
      const first = await ch.read(job.signal);
      if (first.kind !== "data") throw new Error(failureOf(first));
      this.#o.counter.inc({ where: "forwarded" });
      const body = this.#passOn(ch, first, head.headers["content-type"]!, finish, (error) => {
        release();
        if (error !== undefined) {
          this.#o.jobs.finish(record, { status: head.status, error });
        }
      });
      return { kind: "answer", response: new Response(body, { status: head.status, headers }) };
    } catch (err) {
      return end({ kind: "lost", message: (err as Error).message });
    }
  }

  /**
   * The client's copy of a streamed answer: data frames as they come; a break ends it with an
   * error event in the stream's own framing (SSE or NDJSON), the receipt ends it cleanly.
   */
  #passOn(
    channel: InferChannel,
    first: Frame,
    contentType: string,
    finish: (receipt: Frame) => void,
    ended: (error?: string) => void,
  ): ReadableStream<Uint8Array> {
    const sse = contentType.startsWith("text/event-stream");
    return new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(first.bytes.slice());
      },
      async pull(controller) {
        try {
          const frame = await channel.read();
          if (frame.kind === "data") return controller.enqueue(frame.bytes.slice());
          if (frame.kind !== "receipt") throw new Error(failureOf(frame));
          finish(frame);
          ended();
          controller.close();
        } catch (err) {
          const message = `the node running the model was lost mid-answer: ${
            (err as Error).message
          }`;
          const error = { message, type: "server_error", code: "peer_lost" };
          const tail = sse
            ? `data: ${JSON.stringify({ error })}\n\n`
            : `${JSON.stringify({ error: message })}\n`;
          controller.enqueue(new TextEncoder().encode(tail));
          ended(message);
          controller.close();
          channel.abort(err as Error);
        }
      },
      cancel() {
        ended("the client went away");
        channel.abort(new Error("the client went away"));
      },
    });
  }

  /** The receipt, checked: signed by the executor, for this job. */
  async #receipt(frame: Frame, peer: string, jobId: string): Promise<InferReceipt> {
    const opened = await openEnvelope(frame.bytes, MAX_RECEIPT_BYTES);
    if (!opened.ok) throw new Error(`receipt refused: ${opened.detail}`);
    const { kind, signer, payload } = opened.message;
    if (kind !== "infer_receipt" || signer !== peer || payload.executor !== peer) {
      throw new Error(`receipt not signed by the executor ${peer}`);
    }
    if (payload.job_id !== jobId) throw new Error(`receipt is for job ${payload.job_id}`);
    return payload;
  }
}

/** What a frame that should have been data or the receipt says went wrong. */
function failureOf(frame: Frame): string {
  if (frame.kind !== "failure") return `unexpected ${frame.kind} frame`;
  const value = jsonOfFrame(frame) as { message?: unknown };
  return `the peer failed: ${String(value?.message ?? "no reason given")}`;
}
