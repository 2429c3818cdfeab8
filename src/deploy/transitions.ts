import type { DeploymentState } from "../protocol/status.ts";

/**
 * Every state change a deployment may make, in one table. A state may "move" to itself while it
 * is still in progress (a download's progress, an activation resumed after a restart); `failed`
 * and `rolled_back` are final: nothing leaves them, so a late write from work that was timed
 * out or cancelled can never bring a deployment back to life. `active` leaves only for `failed`
 * (its instance broke) or `rolled_back` (deactivated, replaced, rolled back).
 */
export const ALLOWED_TRANSITIONS: Readonly<Record<DeploymentState, readonly DeploymentState[]>> = {
  pending: ["pending", "downloading", "failed", "rolled_back"],
  downloading: ["downloading", "ready", "activating", "failed", "rolled_back"],
  ready: ["activating", "failed", "rolled_back"],
  activating: ["activating", "active", "failed", "rolled_back"],
  active: ["failed", "rolled_back"],
  failed: [],
  rolled_back: [],
};

/** A state change the table refuses; the record stays as it was. */
export class TransitionRefused extends Error {
  readonly from: DeploymentState;
  readonly to: DeploymentState;

  constructor(id: string, from: DeploymentState, to: DeploymentState) {
    super(`deployment ${id} cannot go from ${from} to ${to}`);
    this.name = "TransitionRefused";
    this.from = from;
    this.to = to;
  }
}

/** True when the table allows `from` → `to`. */
export function canTransition(from: DeploymentState, to: DeploymentState): boolean {
  return ALLOWED_TRANSITIONS[from].includes(to);
}
