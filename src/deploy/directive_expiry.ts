import type { DeploymentDirective } from "../protocol/directive.ts";

/**
 * When a directive stops being in force (epoch ms): its `expires_at`, or `issued_at` plus
 * `deploy.directive_ttl_hours` when it has none. Without a bound, a directive relayed from node
 * to node would start deployments on late nodes forever; with it, a node that comes back after
 * the TTL ignores what the fleet has moved on from. Expiry never undoes a deployment that is
 * already active: it only stops new ones.
 */
export function inForceUntil(directive: DeploymentDirective, ttlHours: number): number {
  if (directive.expires_at) return Date.parse(directive.expires_at);
  return Date.parse(directive.issued_at) + ttlHours * 3600_000;
}
