import { z } from "zod";
import { OrderIdSchema } from "./order_id.ts";
import type { DeploymentDirective } from "./directive.ts";
import type { RollbackOrder } from "./rollback.ts";

/**
 * The messages of `/loam/directives-sync/1`, by which a node that was away gets the signed
 * directives and rollback orders it missed, and hands over what it holds that the other lacks,
 * in one exchange on one stream (length-prefixed JSON):
 *
 * 1. the node that opens the stream sends its ids: `{have}`;
 * 2. the other answers with the envelopes the first lacks, whether more are left for another
 *    round, and the ids it lacks in turn: `{envelopes, more, want}`;
 * 3. the first sends what was wanted: `{envelopes}`.
 *
 * Envelopes travel as sent by their issuer (base64 of the envelope bytes), so the receiver
 * verifies the issuer's signature and trusts nothing of the peer that relayed them.
 * @module
 */

/** The most ids of one kind in a message (the archive keeps fewer). */
const MAX_SYNC_IDS = 4096;
/** The most envelopes in one message; the rest follow in the next round. */
export const MAX_SYNC_ENVELOPES = 64;

/** The ids of the directives and rollback orders a node holds (or lacks). */
const OrderIdsSchema = z.strictObject({
  directives: z.array(OrderIdSchema).max(MAX_SYNC_IDS),
  rollbacks: z.array(OrderIdSchema).max(MAX_SYNC_IDS),
});

/** Ids of directives and rollback orders, by kind. */
export type OrderIds = z.infer<typeof OrderIdsSchema>;

const envelopes = z.array(z.base64()).max(MAX_SYNC_ENVELOPES);

/** Step 1: what the opening node holds. */
export const SyncRequestSchema = z.strictObject({ have: OrderIdsSchema });

/** Step 2: what it lacks, and what the answering node lacks. */
export const SyncAnswerSchema = z.strictObject({
  envelopes,
  more: z.boolean(),
  want: OrderIdsSchema,
});

/** Step 3: what the answering node wanted. */
export const SyncPushSchema = z.strictObject({ envelopes });

/**
 * A directive or rollback order whose issuer signature verified, with its envelope text as
 * received: what is archived and handed on, whether it came by gossip or by a sync.
 */
export type SignedOrder =
  | { kind: "directive"; payload: DeploymentDirective; envelope: string }
  | { kind: "rollback"; payload: RollbackOrder; envelope: string };
