import type { AgentProcess } from "./harness.ts";
import { eventually } from "./mesh_helpers.ts";
import { sha256Hex } from "../fixtures/blob_server.ts";

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

/**
 * POSTs a broadcast directive for `blob` (served at `url`) with `artifactType`; `extra` adds or
 * overrides top-level directive fields (config, manifest, options).
 */
export async function postArtifact(
  agent: AgentProcess,
  id: string,
  blob: Uint8Array,
  url: string,
  artifactType: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Promise<Response> {
  return await agent.request("/v1/deployments", {
    method: "POST",
    token: agent.adminToken(),
    body: JSON.stringify({
      directive_id: id,
      scope: { type: "broadcast" },
      artifact: {
        blob_hash: `sha256:${sha256Hex(blob)}`,
        size_bytes: blob.length,
        urls: [url],
        artifact_type: artifactType,
      },
      ...extra,
    }),
  });
}
