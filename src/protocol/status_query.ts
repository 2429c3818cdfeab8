import { z } from "zod";
import { OrderIdSchema } from "./order_id.ts";

/**
 * The messages of `/loam/deployment-status/1`, by which a command post that joins later (`loam
 * deploy --watch-only`) learns the fleet's current state of one deployment from any node: the
 * latest status each node signed, as that node signed it, so the asker verifies every node's
 * signature and trusts nothing of the node that answered.
 * @module
 */

/** The most statuses in one answer (one per node). */
export const MAX_STATUS_ANSWERS = 4096;

/** What the asker wants: one deployment's statuses. */
export const StatusQuerySchema = z.strictObject({ directive_id: OrderIdSchema });

/** The answer: base64 of each node's last status envelope. */
export const StatusAnswerSchema = z.strictObject({
  envelopes: z.array(z.base64()).max(MAX_STATUS_ANSWERS),
});
