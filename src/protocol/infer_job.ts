/**
 * @module
 * The messages of a job one node sends another over `/loam/infer/1` (the MVP node's
 * work_offer, job_claim and receipt): the entry node's signed offer, the executor's answer, the
 * head of the HTTP answer, and the executor's signed receipt.
 */

import { z } from "zod";

/** The POST routes a job may be forwarded for: the OpenAI, Ollama and ONNX-by-name routes. */
export const ROUTABLE_PATH =
  /^\/(v1\/(chat\/completions|completions|embeddings)|api\/(chat|generate|embed)|v1\/models\/[\w.:@-]{1,256}\/infer)$/;

const peerId = z.string().min(1).max(128);
const sha256Ref = z.string().regex(/^sha256:[0-9a-f]{64}$/);

/** A job as the entry node offers it, signed by the entry node (envelope kind `infer_offer`). */
export const InferOfferSchema = z.strictObject({
  job_id: z.uuid(),
  /** The name the client asked for. */
  model: z.string().min(1).max(256),
  /** The file the name resolved to: the executor refuses an instance of another. */
  blob_hash: sha256Ref,
  /** The route, e.g. `/v1/chat/completions`. */
  path: z.string().regex(ROUTABLE_PATH),
  content_type: z.string().max(256),
  /** The caller's Accept (ONNX answers as JSON or raw tensors by it). */
  accept: z.string().max(256),
  body_bytes: z.number().int().min(0),
  /** Hex SHA-256 of the body that follows the offer. */
  body_sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** The entry node's peer id: the stream's remote peer and the offer's signer. */
  requester: peerId,
  /** The caller's token name on the entry node (logs and fairness within the peer). */
  client: z.string().max(128),
  deadline: z.iso.datetime({ offset: true }),
});

/** A job offer. */
export type InferOffer = z.infer<typeof InferOfferSchema>;

/** Why an executor refuses an offer; `busy` is worth retrying, on this holder or another. */
export const REFUSALS = ["busy", "unknown_model", "not_allowed", "bad_offer"] as const;

/** The executor's answer to an offer: it runs the job, or says why not. */
export const InferAnswerSchema = z.union([
  z.strictObject({ ok: z.literal(true) }),
  z.strictObject({
    ok: z.literal(false),
    reason: z.enum(REFUSALS),
    message: z.string().max(1024),
    retry_after: z.number().int().min(0).max(3600).optional(),
  }),
]);

/** An executor's answer. */
export type InferAnswer = z.infer<typeof InferAnswerSchema>;

/** The status and headers of the executor's HTTP answer, before its body. */
export const InferHeadSchema = z.strictObject({
  status: z.number().int().min(100).max(599),
  headers: z.record(z.string().max(64), z.string().max(4096)),
});

/** An executor's answer head. */
export type InferHead = z.infer<typeof InferHeadSchema>;

/** What the executor ran, signed by it (envelope kind `infer_receipt`). */
export const InferReceiptSchema = z.strictObject({
  job_id: z.uuid(),
  model: z.string().min(1).max(256),
  blob_hash: sha256Ref,
  /** The executing node's peer id: the receipt's signer. */
  executor: peerId,
  requester: peerId,
  /** The HTTP status of its answer. */
  status: z.number().int().min(100).max(599),
  tokens_in: z.number().int().min(0),
  tokens_out: z.number().int().min(0),
  bytes_in: z.number().int().min(0),
  bytes_out: z.number().int().min(0),
  started_at: z.iso.datetime({ offset: true }),
  finished_at: z.iso.datetime({ offset: true }),
});

/** A job receipt. */
export type InferReceipt = z.infer<typeof InferReceiptSchema>;
