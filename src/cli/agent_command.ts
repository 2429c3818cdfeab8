import type { ParseArgsOptionsConfig } from "node:util";
import { CONFIG_OPTIONS, CONFIG_OPTIONS_HELP, loadConfigFromFlags } from "./config_flags.ts";
import { type AgentEndpoint, findAgent } from "./agent_client.ts";

/** The flags of every command that talks to the local agent (status, deployments, logs, …). */
export const AGENT_OPTIONS = {
  ...CONFIG_OPTIONS,
  json: { type: "boolean" },
  token: { type: "string" },
} as const satisfies ParseArgsOptionsConfig;

/** Their help lines, for the end of each such command's help. */
export const AGENT_OPTIONS_HELP =
  `  --json                 print the agent's JSON answer instead of a table
  --token <token>        API token (default: <data>/api/admin.token)

The agent is found as 'loam status' finds it: <data>/api/address, else api.listen.
Exit 1 when the agent cannot be reached or refuses the request.

${CONFIG_OPTIONS_HELP}`;

/** The agent the parsed flags point at. */
export async function agentFrom(
  values: { token?: string } & Parameters<typeof loadConfigFromFlags>[0],
): Promise<AgentEndpoint> {
  return await findAgent(await loadConfigFromFlags(values), values.token);
}
