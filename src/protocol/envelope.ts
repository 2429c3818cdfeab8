/**
 * @module
 * Wire formats: the zod schema of every message on the mesh and the signed envelope they all
 * travel in (Ed25519 over the payload bytes, the signer's peer id beside it).
 */

import { z } from "zod";
import { peerIdFromString } from "@libp2p/peer-id";
import type { PrivateKey } from "@libp2p/interface";
import { fromString as bytesFromString } from "uint8arrays/from-string";
import { toString as bytesToString } from "uint8arrays/to-string";
import { type DeploymentDirective, DeploymentDirectiveSchema } from "./directive.ts";
import { type DeploymentStatus, DeploymentStatusSchema } from "./status.ts";
import { type Advert, AdvertSchema } from "./advert.ts";
import { type RollbackOrder, RollbackOrderSchema } from "./rollback.ts";
import {
  type InferOffer,
  InferOfferSchema,
  type InferReceipt,
  InferReceiptSchema,
} from "./infer_job.ts";
import { JsonLimitError, parseBoundedJson } from "./bounded_json.ts";
import { type RegistryDocument, RegistryDocumentSchema } from "./registry_entry.ts";

/** Envelope format version this agent speaks. */
const ENVELOPE_VERSION = 1;

const PAYLOAD_SCHEMAS = {
  directive: DeploymentDirectiveSchema,
  status: DeploymentStatusSchema,
  advert: AdvertSchema,
  rollback: RollbackOrderSchema,
  infer_offer: InferOfferSchema,
  infer_receipt: InferReceiptSchema,
  registry_entry: RegistryDocumentSchema,
} as const;

/** Kinds of wire message (the infer kinds travel on `/loam/infer/1` streams, never as gossip). */
export type MessageKind = keyof typeof PAYLOAD_SCHEMAS;

/** Kinds that travel as gossip on the network's topics. */
export type GossipKind = Exclude<MessageKind, "infer_offer" | "infer_receipt">;

/** The payload type of each kind. */
export interface PayloadOf {
  directive: DeploymentDirective;
  status: DeploymentStatus;
  advert: Advert;
  rollback: RollbackOrder;
  infer_offer: InferOffer;
  infer_receipt: InferReceipt;
  registry_entry: RegistryDocument;
}

/** A verified, parsed message. */
export type OpenedMessage = {
  [K in MessageKind]: { kind: K; signer: string; payload: PayloadOf[K] };
}[MessageKind];

/** Why a message was dropped (metric label values). */
export type DropReason =
  | "oversized"
  | "not_json"
  | "bad_envelope"
  | "unknown_version"
  | "unknown_kind"
  | "bad_signer"
  | "bad_signature"
  | "too_deep"
  | "schema";

/** Result of {@link openEnvelope}: the message, or why it was dropped. */
export type OpenResult =
  | { ok: true; message: OpenedMessage }
  | { ok: false; reason: DropReason; detail: string };

const EnvelopeSchema = z.strictObject({
  v: z.number(),
  kind: z.string(),
  payload: z.string(),
  signer: z.string(),
  sig: z.string(),
});

/** Signs `payload` as an envelope of `kind`: Ed25519 over the payload's JSON text bytes. */
export async function sealEnvelope<K extends MessageKind>(
  kind: K,
  payload: PayloadOf[K],
  signerKey: PrivateKey,
  signerPeerId: string,
): Promise<Uint8Array> {
  const text = JSON.stringify(payload);
  const sig = await signerKey.sign(new TextEncoder().encode(text));
  const envelope = {
    v: ENVELOPE_VERSION,
    kind,
    payload: text,
    signer: signerPeerId,
    sig: bytesToString(sig, "base64"),
  };
  return new TextEncoder().encode(JSON.stringify(envelope));
}

function drop(reason: DropReason, detail: string): OpenResult {
  return { ok: false, reason, detail };
}

/**
 * Checks an envelope in the order that costs least for junk: size, JSON, envelope shape,
 * version, kind, signer key, signature over the payload bytes, and only then the payload's
 * schema.
 */
export async function openEnvelope(data: Uint8Array, maxBytes: number): Promise<OpenResult> {
  if (data.length > maxBytes) return drop("oversized", `${data.length} bytes > ${maxBytes}`);
  let json: unknown;
  try {
    json = parseBoundedJson(new TextDecoder().decode(data), { maxBytes });
  } catch (err) {
    if (err instanceof JsonLimitError) return drop("too_deep", `envelope: ${err.message}`);
    return drop("not_json", "envelope is not JSON");
  }
  const envelope = EnvelopeSchema.safeParse(json);
  if (!envelope.success) return drop("bad_envelope", envelope.error.issues[0]!.message);
  const { v, kind, payload, signer, sig } = envelope.data;
  if (v !== ENVELOPE_VERSION) return drop("unknown_version", `envelope version ${v}`);
  if (!(kind in PAYLOAD_SCHEMAS)) return drop("unknown_kind", `kind "${kind}"`);
  let publicKey;
  try {
    publicKey = peerIdFromString(signer).publicKey;
  } catch {
    return drop("bad_signer", `signer "${signer.slice(0, 80)}" is not a peer id`);
  }
  if (!publicKey) return drop("bad_signer", "signer peer id does not embed its public key");
  let valid = false;
  try {
    valid = await publicKey.verify(
      new TextEncoder().encode(payload),
      bytesFromString(sig, "base64"),
    );
  } catch {
    valid = false;
  }
  if (!valid) return drop("bad_signature", `signature does not verify for ${signer}`);
  let body: unknown;
  try {
    body = parseBoundedJson(payload, { maxBytes });
  } catch (err) {
    if (err instanceof JsonLimitError) return drop("too_deep", `${kind}: ${err.message}`);
    return drop("schema", "payload is not JSON");
  }
  const parsed = PAYLOAD_SCHEMAS[kind as MessageKind].safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return drop("schema", `${kind}.${issue.path.join(".")}: ${issue.message}`);
  }
  return { ok: true, message: { kind, signer, payload: parsed.data } as OpenedMessage };
}
