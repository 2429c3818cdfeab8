import type { Command } from "./command.ts";
import { println } from "./command.ts";
import { AGENT_OPTIONS_HELP, agentFrom, parseItemAction } from "./agent_command.ts";
import { formatTable } from "./table.ts";
import { getJson } from "./agent_client.ts";
import type { DeploymentRecord } from "../deploy/records.ts";

const HELP = `Usage: loam deployments [ls | show <id> | activate <id> | rm <id>] [--json] [options]

The deployments on the local agent, as GET /v1/deployments shows them.
  ls                     one line each: id, state, progress, artifact, instance (the default)
  show <id>              one deployment with its history
  activate <id>          activate a deployment waiting in ready (auto_activate: false)
  rm <id>                stop a deployment (rolled_back), or remove a finished one's record

${AGENT_OPTIONS_HELP}`;

const ACTIONS = ["show", "activate", "rm"] as const;

function row(d: DeploymentRecord): string[] {
  const artifact = d.directive.artifact;
  return [
    d.directive_id,
    d.state,
    `${d.progress_percent}%`,
    artifact.artifact_type.type,
    artifact.name ?? artifact.blob_hash.slice(7, 19),
    d.instance_id ?? "-",
  ];
}

function details(d: DeploymentRecord): string {
  const lines = [
    `id          ${d.directive_id}`,
    `state       ${d.state} (${d.progress_percent}%)`,
    `artifact    ${d.directive.artifact.artifact_type.type} ${d.directive.artifact.blob_hash}`,
    `instance    ${d.instance_id ?? "-"}`,
  ];
  if (d.error_message) lines.push(`error       ${d.error_message}`);
  lines.push("history");
  for (const h of d.history) lines.push(`  ${h.at}  ${h.state}`);
  return lines.join("\n");
}

/** `loam deployments`: list, show, activate or remove deployments through the local API. */
export const deploymentsCommand: Command = {
  name: "deployments",
  help: HELP,
  async run(args) {
    const parsed = parseItemAction("deployments", "deployment", args, ACTIONS);
    if (!parsed) {
      println(HELP);
      return 0;
    }
    const { action, id } = parsed;
    const agent = await agentFrom(parsed.values);
    const path = id === undefined ? "/v1/deployments" : `/v1/deployments/${encodeURIComponent(id)}`;
    const answer = action === "ls" || action === "show"
      ? await getJson(agent, path)
      : await getJson(agent, action === "rm" ? path : `${path}/activate`, {
        method: action === "rm" ? "DELETE" : "POST",
      });
    if (parsed.values.json) {
      println(JSON.stringify(answer, null, 2));
      return 0;
    }
    if (action === "ls") {
      const { deployments } = answer as { deployments: DeploymentRecord[] };
      println(formatTable(
        ["ID", "STATE", "PROGRESS", "TYPE", "ARTIFACT", "INSTANCE"],
        deployments.map(row),
      ));
    } else if (action === "rm" && (answer as { outcome?: string }).outcome === "removed") {
      println(`${id}: record removed`);
    } else {
      println(details(answer as DeploymentRecord));
    }
    return 0;
  },
};
