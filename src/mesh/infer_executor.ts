import type { PrivateKey } from "@libp2p/interface";
import type { Counter } from "prom-client";
import { openEnvelope, sealEnvelope } from "../protocol/envelope.ts";
import type { InferAnswer, InferOffer, InferReceipt } from "../protocol/infer_job.ts";
import { createSha256 } from "../blobs/digest.ts";
import { type JobAccount, withJobAccount } from "../runtimes/job_account.ts";
import type { Logger } from "../system/logger.ts";
import { concatBytes } from "../system/bytes.ts";
import type { MeshNode } from "./node.ts";
import type { JobLog } from "./job_log.ts";
import { type Frame, INFER_PROTOCOL, InferChannel, SPARE_IDLE_MS } from "./infer_protocol.ts";

/** How long an entry node has to send its body after its offer. */
const BODY_TIMEOUT_MS = 10_000;
/** Jobs one peer may have open here at once (its queue share is bounded by the queue itself). */
const STREAMS_PER_PEER = 64;
/** Largest signed offer. */
const MAX_OFFER_BYTES = 16 * 1024;
/** Answer headers passed back to the entry node. */
const PASSED_HEADERS = ["content-type", "retry-after", "server-timing"];

/** A model here as an offer needs it: its file, and whether its queue would take a job. */
export interface LocalModel {
  /** `sha256:<hex>` of its file. */
  blobHash: string;
  /** Its queue would refuse a new job now. */
  full: boolean;
}

/** What the executor needs from the agent. */
export interface InferExecutorOptions {
  node: MeshNode;
  privateKey: PrivateKey;
  /** `inference.accept_remote`: off, every offer is refused `not_allowed`. */
  acceptRemote: boolean;
  /** `jobs.max_input_bytes`: a larger body is refused. */
  maxInputBytes: number;
  /** The loaded model called `name` here; "loading" or undefined when it cannot run a job. */
  localModel(name: string): LocalModel | "loading" | undefined;
  /**
   * Runs the request through this node's own inference routes, as the caller `peer` (jobs of
   * one peer share one turn in the fair queue).
   */
  runJob(req: Request, peer: string): Promise<Response>;
  jobs: JobLog;
  /** `loam_fleet_jobs_total`; this counts `served`. */
  counter: Counter<"where">;
  logger: Logger;
}

/**
 * Runs jobs fleet peers send over `/loam/infer/1`: the offer must be signed by the peer on the
 * stream, the model loaded here with the same file, the body match its hash; then the job runs
 * through the same routes and fair queue as a local call, its answer streams back, and a signed
 * receipt of what it used ends the job. The stream then waits for the entry node's next offer.
 */
export async function serveInfer(o: InferExecutorOptions): Promise<void> {
  await o.node.handle(INFER_PROTOCOL, async (stream, connection) => {
    const peer = connection.remotePeer.toString();
    const channel = new InferChannel(stream);
    try {
      // a frame this protocol does not have is refused like any other bad offer
      let next: Frame | Error | undefined = await channel.read(AbortSignal.timeout(SPARE_IDLE_MS))
        .catch((err) => err as Error);
      while (next !== undefined) next = await serveOne(o, channel, peer, next);
    } catch (err) {
      o.logger.debug("job for a peer ended early", { peer, error: err });
      channel.abort(err as Error);
    }
  }, { maxInboundStreams: STREAMS_PER_PEER });
}

/**
 * Runs the job `frame` offers (or refuses it, ending the stream); the stream's next offer when
 * the entry node sends one, undefined once the stream has ended.
 */
async function serveOne(
  o: InferExecutorOptions,
  channel: InferChannel,
  peer: string,
  frame: Frame | Error,
): Promise<Frame | undefined> {
  const opened = !(frame instanceof Error) && frame.kind === "offer"
    ? await openEnvelope(frame.bytes, MAX_OFFER_BYTES)
    : null;
  const refuse = async (answer: InferAnswer & { ok: false }) => {
    await channel.writeJson("answer", answer);
    await channel.close();
    return undefined;
  };
  if (!opened?.ok || opened.message.kind !== "infer_offer") {
    const why = frame instanceof Error
      ? frame.message
      : opened && !opened.ok
      ? opened.detail
      : "not an offer";
    return await refuse({ ok: false, reason: "bad_offer", message: `bad offer: ${why}` });
  }
  const offer = opened.message.payload;
  const problem = offerProblem(o, offer, opened.message.signer, peer);
  if (problem) return await refuse(problem);
  let body: Uint8Array<ArrayBuffer>;
  try {
    body = await readBody(channel, offer); // sent with the offer, before the answer
  } catch (err) {
    return await refuse({
      ok: false,
      reason: "bad_offer",
      message: `bad body: ${(err as Error).message}`.slice(0, 1024),
    });
  }
  await channel.writeJson("answer", { ok: true });
  const started = new Date().toISOString();
  const record = o.jobs.start({
    job_id: offer.job_id,
    model: offer.model,
    blob_hash: offer.blob_hash,
    where: "served",
    peer,
    client: offer.client,
  });
  o.counter.inc({ where: "served" });
  const controller = new AbortController();
  // the entry node sends nothing more until `ready`: a read that ends while the job runs means it
  // gave up (its client went away); what it reads after `ready` is the next offer
  let running = true;
  const next = channel.read();
  const stop = () => running && controller.abort();
  next.then(stop, stop);
  const account: JobAccount = { tokensIn: 0, tokensOut: 0 };
  const req = new Request(`http://peer${offer.path}`, {
    method: "POST",
    headers: { "content-type": offer.content_type, accept: offer.accept },
    body,
    signal: controller.signal,
  });
  let status: number | null = null;
  try {
    const response = await withJobAccount(account, () => o.runJob(req, peer));
    status = response.status;
    const headers: Record<string, string> = {};
    for (const name of PASSED_HEADERS) {
      const value = response.headers.get(name);
      if (value !== null) headers[name] = value;
    }
    await channel.writeJson("head", { status, headers });
    // a streamed answer's tokens are counted when its generation ends, before the body does
    const bytesOut = await channel.writeStream(response.body);
    const receipt: InferReceipt = {
      job_id: offer.job_id,
      model: offer.model,
      blob_hash: offer.blob_hash,
      executor: o.node.peerId.toString(),
      requester: peer,
      status,
      tokens_in: account.tokensIn,
      tokens_out: account.tokensOut,
      bytes_in: body.length,
      bytes_out: bytesOut,
      started_at: started,
      finished_at: new Date().toISOString(),
    };
    await channel.write(
      "receipt",
      await sealEnvelope("infer_receipt", receipt, o.privateKey, receipt.executor),
    );
    running = false;
    await channel.write("ready", new Uint8Array());
    o.jobs.finish(record, { status, receipt });
  } catch (err) {
    const message = (err as Error).message;
    o.jobs.finish(record, { status, error: message });
    await channel.writeJson("failure", { message }).catch(() => {});
    throw err;
  }
  return await nextOffer(channel, next);
}

/**
 * The offer after a finished job, read while it ran: undefined when the entry node ends the
 * stream (closed here too) or leaves it idle for {@link SPARE_IDLE_MS} (ended at once).
 */
async function nextOffer(channel: InferChannel, next: Promise<Frame>): Promise<Frame | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const idle = new Promise<"idle">((resolve) => timer = setTimeout(resolve, SPARE_IDLE_MS, "idle"));
  try {
    const frame = await Promise.race([next.catch(() => "ended" as const), idle]);
    if (frame === "idle") channel.abort(new Error("no next job"));
    else if (frame === "ended") await channel.close();
    else return frame;
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

/** Why an offer cannot run here, as the refusal to send; undefined when it can. */
function offerProblem(
  o: InferExecutorOptions,
  offer: InferOffer,
  signer: string,
  peer: string,
): (InferAnswer & { ok: false }) | undefined {
  if (signer !== peer || offer.requester !== peer) {
    return {
      ok: false,
      reason: "bad_offer",
      message: `offer signed by ${signer} for ${offer.requester}, sent by ${peer}`,
    };
  }
  if (!o.acceptRemote) {
    return {
      ok: false,
      reason: "not_allowed",
      message: "this node runs no jobs for peers (inference.accept_remote)",
    };
  }
  if (offer.body_bytes > o.maxInputBytes) {
    return {
      ok: false,
      reason: "bad_offer",
      message: `body of ${offer.body_bytes} bytes exceeds jobs.max_input_bytes ${o.maxInputBytes}`,
    };
  }
  if (Date.parse(offer.deadline) <= Date.now()) {
    return { ok: false, reason: "bad_offer", message: `deadline ${offer.deadline} has passed` };
  }
  const local = o.localModel(offer.model);
  if (local === undefined || local === "loading" || local.blobHash !== offer.blob_hash) {
    return {
      ok: false,
      reason: "unknown_model",
      message: `no loaded model ${offer.model} of ${offer.blob_hash} here`,
    };
  }
  if (local.full) {
    return {
      ok: false,
      reason: "busy",
      message: `model ${offer.model} has a full queue here`,
      retry_after: 1,
    };
  }
  return undefined;
}

/** The body after an accepted offer: exactly its declared length, matching its hash. */
async function readBody(
  channel: InferChannel,
  offer: InferOffer,
): Promise<Uint8Array<ArrayBuffer>> {
  const signal = AbortSignal.timeout(BODY_TIMEOUT_MS);
  const chunks: Uint8Array[] = [];
  const hash = createSha256();
  let size = 0;
  while (size < offer.body_bytes) {
    const frame = await channel.read(signal);
    if (frame.kind !== "body") throw new Error(`expected a body frame, got ${frame.kind}`);
    size += frame.bytes.length;
    if (size > offer.body_bytes) throw new Error("body longer than the offer says");
    chunks.push(frame.bytes.slice());
    hash.update(frame.bytes);
  }
  if (hash.digest("hex") !== offer.body_sha256) throw new Error("body does not match its hash");
  return concatBytes(chunks, size);
}
