import type { ParseArgsOptionsConfig } from "node:util";
import { CONFIG_OPTIONS, CONFIG_OPTIONS_HELP, loadConfigFromFlags } from "./config_flags.ts";
import { type AgentEndpoint, findAgent } from "./agent_client.ts";
import { parseFlags } from "./command.ts";
import { UserError } from "../system/errors.ts";

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

/** What {@link parseItemAction} found: the action, the item it names (none for `ls`), the flags. */
export interface ItemAction<A extends string> {
  action: A | "ls";
  id?: string;
  values: Parameters<typeof agentFrom>[0] & { json?: boolean };
}

/**
 * Parses `<command> [ls | <action> <id>] [flags]` (kubectl's shape): no action is `ls`; every
 * action but `ls` needs the item's id; an unknown action, a missing id or an extra argument is a
 * usage error (exit 2). Undefined for `--help`.
 */
export function parseItemAction<A extends string>(
  command: string,
  item: string,
  args: string[],
  actions: readonly A[],
): ItemAction<A> | undefined {
  const first = args[0];
  const action = first === undefined || first.startsWith("-") ? "ls" : first;
  if (action !== "ls" && !(actions as readonly string[]).includes(action)) {
    throw new UserError(
      `${command}: unknown action "${action}" (${["ls", ...actions].join(", ")})`,
    );
  }
  const parsed = parseFlags(
    `${command} ${action}`,
    action === first ? args.slice(1) : args,
    AGENT_OPTIONS,
    1,
  );
  if (parsed.help) return undefined;
  const id = parsed.positionals[0];
  if ((action === "ls") !== (id === undefined)) {
    throw new UserError(
      action === "ls"
        ? `${command} ls: unexpected argument "${id}"`
        : `${command} ${action}: which ${item}? (loam ${command} ${action} <id>)`,
    );
  }
  return { action: action as A | "ls", id, values: parsed.values };
}
