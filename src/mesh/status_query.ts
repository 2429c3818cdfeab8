import type { PeerId } from "@libp2p/interface";
import { fromString as bytesFromString } from "uint8arrays/from-string";
import { toString as bytesToString } from "uint8arrays/to-string";
import type { MeshNode } from "./node.ts";
import type { StatusCache } from "./status_cache.ts";
import { openEnvelope } from "../protocol/envelope.ts";
import type { DeploymentStatus } from "../protocol/status.ts";
import { JsonMessages } from "./json_messages.ts";
import {
  MAX_STATUS_ANSWERS,
  StatusAnswerSchema,
  StatusQuerySchema,
} from "../protocol/status_query.ts";
import type { Logger } from "../system/logger.ts";

/** The protocol a late command post asks a node for the fleet's state of one deployment. */
export const STATUS_QUERY_PROTOCOL = "/loam/deployment-status/1";

const MAX_QUERY_BYTES = 1024;
/** Room for the most statuses an answer holds, base64 included. */
const MAX_ANSWER_BYTES = 8 * 1024 * 1024;
const QUERY_TIMEOUT_MS = 10_000;

/** Answers status queries from the cache (at most two open per connection); refuses bad ones. */
export async function serveStatusQueries(
  node: MeshNode,
  cache: StatusCache,
  logger: Logger,
): Promise<void> {
  await node.handle(STATUS_QUERY_PROTOCOL, async (stream, connection) => {
    const signal = AbortSignal.timeout(QUERY_TIMEOUT_MS);
    const messages = new JsonMessages(stream, MAX_QUERY_BYTES, signal);
    try {
      const query = await messages.receive(StatusQuerySchema);
      const envelopes = cache.envelopesOf(query.directive_id).slice(0, MAX_STATUS_ANSWERS)
        .map((text) => bytesToString(new TextEncoder().encode(text), "base64pad"));
      await messages.send({ envelopes });
      await stream.close({ signal });
    } catch (err) {
      await messages.refuse(err);
      logger.debug("status query failed", { peer: connection.remotePeer.toString(), error: err });
    }
  }, { maxInboundStreams: 2 });
}

/** One node's verified status, the peer id that signed it, and the envelope as signed. */
export interface SignedStatus {
  status: DeploymentStatus;
  signer: string;
  envelope: string;
}

/**
 * Asks `peer` for the statuses of `directiveId`; keeps only those whose signature verifies and
 * that are about that deployment (a lying peer can leave statuses out, not forge them).
 */
export async function queryStatuses(
  node: MeshNode,
  peer: PeerId,
  directiveId: string,
  maxMessageBytes: number,
): Promise<SignedStatus[]> {
  const signal = AbortSignal.timeout(QUERY_TIMEOUT_MS);
  const stream = await node.dialProtocol(peer, STATUS_QUERY_PROTOCOL, { signal });
  const messages = new JsonMessages(stream, MAX_ANSWER_BYTES, signal);
  await messages.send({ directive_id: directiveId });
  const answer = await messages.receive(StatusAnswerSchema);
  await stream.close({ signal }).catch(() => {});
  const statuses: SignedStatus[] = [];
  for (const packed of answer.envelopes) {
    const bytes = bytesFromString(packed, "base64pad");
    const opened = await openEnvelope(bytes, maxMessageBytes);
    if (!opened.ok || opened.message.kind !== "status") continue;
    if (opened.message.payload.directive_id !== directiveId) continue;
    statuses.push({
      status: opened.message.payload,
      signer: opened.message.signer,
      envelope: new TextDecoder().decode(bytes),
    });
  }
  return statuses;
}

/** Directives whose statuses one catch-up asks a peer for. */
const MAX_CATCH_UP_DIRECTIVES = 16;

/**
 * Fills `cache` with `peer`'s kept statuses of directives it just handed over, so a node that
 * joined late can answer a command post about nodes it never met (a relay chain's first link
 * may be gone by then). Each status is verified as it arrives; failures only log.
 */
export async function catchUpStatuses(
  node: MeshNode,
  peer: PeerId,
  directiveIds: string[],
  cache: StatusCache,
  maxMessageBytes: number,
  logger: Logger,
): Promise<void> {
  for (const id of directiveIds.slice(0, MAX_CATCH_UP_DIRECTIVES)) {
    try {
      for (
        const { status, signer, envelope } of await queryStatuses(node, peer, id, maxMessageBytes)
      ) {
        cache.record(status, signer, envelope);
      }
    } catch (err) {
      logger.debug("status catch-up failed", {
        peer: peer.toString(),
        directive_id: id,
        error: err,
      });
      return;
    }
  }
}
