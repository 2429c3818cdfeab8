import type { AgentProcess } from "./harness.ts";
import { eventually } from "./mesh_helpers.ts";

/** The deployment record once it reached one of `states` (default: active or failed). */
export async function settledDeployment(
  agent: AgentProcess,
  id: string,
  states = ["active", "failed"],
  timeoutMs?: number,
  // deno-lint-ignore no-explicit-any
): Promise<any> {
  return await eventually(`${id} settled`, async () => {
    const res = await agent.request(`/v1/deployments/${id}`, { token: agent.adminToken() });
    const record = await res.json();
    return states.includes(record.state) ? record : undefined;
  }, timeoutMs);
}
