import type { Command } from "./command.ts";
import { parseFlags, println } from "./command.ts";
import { AGENT_OPTIONS, AGENT_OPTIONS_HELP, agentFrom } from "./agent_command.ts";
import { formatTable, shortPeerId } from "./table.ts";
import { getJson } from "./agent_client.ts";
import type { FleetNode } from "../mesh/fleet_view.ts";

const HELP = `Usage: loam fleet [--json] [options]

Every node the local agent has heard from through adverts and deployment statuses
(GET /v1/fleet), itself first: online or when last seen, arch, GPUs, version, and the state of
each deployment on it.

${AGENT_OPTIONS_HELP}`;

/** How long ago `iso` was, shortly (`12s`, `4m`, `3h`, `2d`). */
function ago(iso: string): string {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** `loam fleet`: the fleet as this node sees it, through the local API. */
export const fleetCommand: Command = {
  name: "fleet",
  help: HELP,
  async run(args) {
    const parsed = parseFlags("fleet", args, AGENT_OPTIONS);
    if (parsed.help) {
      println(HELP);
      return 0;
    }
    const answer = await getJson(await agentFrom(parsed.values), "/v1/fleet");
    if (parsed.values.json) {
      println(JSON.stringify(answer, null, 2));
      return 0;
    }
    const { nodes } = answer as { nodes: FleetNode[] };
    println(formatTable(
      ["NODE", "PEER", "ONLINE", "SEEN", "ARCH", "GPUS", "VERSION", "DEPLOYMENTS"],
      nodes.map((n) => [
        `${n.node_id ?? "?"}${n.self ? " (this node)" : ""}`,
        shortPeerId(n.peer_id),
        n.online ? "yes" : "no",
        n.self ? "-" : ago(n.last_seen),
        n.arch ?? "-",
        String(n.gpus.length),
        n.version ?? "-",
        n.deployments.map((d) => `${d.directive_id}:${d.state}`).join(" ") || "-",
      ]),
    ));
    return 0;
  },
};
