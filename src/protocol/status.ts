import { z } from "zod";

/**
 * Lifecycle states of a deployment on one node: Peat's, plus `ready` (downloaded and verified,
 * waiting for `POST /v1/deployments/{id}/activate` because `auto_activate` is false).
 */
export const DeploymentStateSchema = z.enum([
  "pending",
  "downloading",
  "ready",
  "activating",
  "active",
  "failed",
  "rolled_back",
]);

/** A deployment state. */
export type DeploymentState = z.infer<typeof DeploymentStateSchema>;

/** States a deployment does not leave by itself. */
export const TERMINAL_STATES: readonly DeploymentState[] = ["active", "failed", "rolled_back"];

/** One node's report on one deployment (Peat DeploymentStatus). */
export const DeploymentStatusSchema = z.strictObject({
  directive_id: z.string().min(1),
  node_id: z.string().min(1),
  reported_at: z.iso.datetime({ offset: true }),
  state: DeploymentStateSchema,
  progress_percent: z.number().int().min(0).max(100),
  error_message: z.string().optional(),
  instance_id: z.string().optional(),
});

/** A validated deployment status report. */
export type DeploymentStatus = z.infer<typeof DeploymentStatusSchema>;
