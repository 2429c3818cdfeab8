import { z } from "zod";
import { OrderIdSchema as id } from "./order_id.ts";

/**
 * A signed order from the command post to undo a deployment (sent on the directives topic when
 * too few nodes succeeded, see `rollback_threshold_percent`): every node that has it deactivates
 * it, or drops it before activation.
 */
export const RollbackOrderSchema = z.strictObject({
  rollback_id: id,
  directive_id: id,
  issued_at: z.iso.datetime({ offset: true }),
  issuer_node_id: z.string().min(1),
  reason: z.string().max(1000).default(""),
});

/** A validated rollback order. */
export type RollbackOrder = z.infer<typeof RollbackOrderSchema>;
