import type { Command } from "./command.ts";
import { println } from "./command.ts";
import { AGENT_OPTIONS_HELP, agentFrom, parseItemAction } from "./agent_command.ts";
import { formatTable } from "./table.ts";
import { getJson } from "./agent_client.ts";
import type { InstanceView } from "../runtimes/adapter.ts";

const HELP = `Usage: loam instances [ls | show <id>] [--json] [options]

What the local agent runs now (GET /v1/instances): programs, containers, models, WASM modules.
  ls                     one line each: id, adapter, state, provider, memory, since (the default)
  show <id>              every field of one instance

${AGENT_OPTIONS_HELP}`;

const mib = (bytes: unknown) =>
  typeof bytes === "number" ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : "-";

/** `loam instances`: the instances of every adapter, through the local API. */
export const instancesCommand: Command = {
  name: "instances",
  help: HELP,
  async run(args) {
    const parsed = parseItemAction("instances", "instance", args, ["show"] as const);
    if (!parsed) {
      println(HELP);
      return 0;
    }
    const { id } = parsed;
    const agent = await agentFrom(parsed.values);
    const answer = await getJson(
      agent,
      id === undefined ? "/v1/instances" : `/v1/instances/${encodeURIComponent(id)}`,
    );
    if (parsed.values.json) {
      println(JSON.stringify(answer, null, 2));
    } else if (id === undefined) {
      const { instances } = answer as { instances: InstanceView[] };
      println(formatTable(
        ["ID", "ADAPTER", "STATE", "PROVIDER", "MEMORY", "STARTED"],
        instances.map((i) => [
          i.instance_id,
          i.adapter,
          i.state,
          i.provider ?? "-",
          mib(i.memory_bytes),
          i.started_at ?? "-",
        ]),
      ));
    } else {
      const view = answer as InstanceView;
      const width = Math.max(...Object.keys(view).map((k) => k.length));
      println(
        Object.entries(view).map(([k, v]) =>
          `${k.padEnd(width)}  ${typeof v === "string" ? v : JSON.stringify(v)}`
        ).join("\n"),
      );
    }
    return 0;
  },
};
