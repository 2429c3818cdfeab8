import type { Command } from "./command.ts";
import { parseFlags, println } from "./command.ts";
import { AGENT_OPTIONS, AGENT_OPTIONS_HELP, agentFrom } from "./agent_command.ts";
import { formatTable, shortPeerId } from "./table.ts";
import { callAgent, getJson } from "./agent_client.ts";
import { readBoundedJsonFile } from "../protocol/bounded_json.ts";
import type { EntryView } from "../registry/registry_store.ts";
import { ID_FIELD } from "../protocol/registry_entry.ts";
import { UserError } from "../system/errors.ts";

const HELP =
  `Usage: loam registry [ls | show <id> | add <entry.json> | rm <id>] [--agents] [options]

The fleet's model and agent registry, through the local agent (/v1/registry/models, or
/v1/registry/agents with --agents).
  ls                     one line each: id, version, type, owner (the default)
  show <id>              one entry, all its fields
  add <entry.json>       publish an AIModel (or AIAgent) as this node's entry; a new version of
                         one it already published replaces it
  rm <id>                delete one of this node's entries (a trusted issuer may delete any)

  --agents               agents instead of models
${AGENT_OPTIONS_HELP}`;

/** The largest entry file `add` reads. */
const MAX_ENTRY_FILE = 1024 * 1024;

/** `loam registry`: list, show, publish and delete registry entries. */
export const registryCommand: Command = {
  name: "registry",
  help: HELP,
  async run(args) {
    const first = args[0];
    const action = first === undefined || first.startsWith("-") ? "ls" : first;
    if (!["ls", "show", "add", "rm"].includes(action)) {
      throw new UserError(`registry: unknown action "${action}" (ls, show, add, rm)`);
    }
    const parsed = parseFlags(
      `registry ${action}`,
      action === first ? args.slice(1) : args,
      { ...AGENT_OPTIONS, agents: { type: "boolean" } },
      1,
    );
    if (parsed.help) {
      println(HELP);
      return 0;
    }
    const arg = parsed.positionals[0];
    if ((action === "ls") !== (arg === undefined)) {
      throw new UserError(
        action === "ls"
          ? `registry ls: unexpected argument "${arg}"`
          : `registry ${action}: which ${action === "add" ? "file" : "entry"}?`,
      );
    }
    const kind = parsed.values.agents ? "agents" : "models";
    const idField = ID_FIELD[parsed.values.agents ? "agent" : "model"];
    const agent = await agentFrom(parsed.values);
    const base = `/v1/registry/${kind}`;
    let answer: unknown;
    if (action === "ls") answer = await getJson(agent, base);
    else if (action === "show") {
      answer = await getJson(agent, `${base}/${encodeURIComponent(arg!)}`);
    } else if (action === "rm") {
      await getJson(agent, `${base}/${encodeURIComponent(arg!)}`, { method: "DELETE" });
      println(`${arg}: deleted`);
      return 0;
    } else {
      const entry = await readBoundedJsonFile(arg!, MAX_ENTRY_FILE).catch((err) => {
        throw new UserError(`registry add: ${arg}: ${(err as Error).message}`);
      }) as Record<string, unknown>;
      const body = JSON.stringify(entry);
      const path = `${base}/${encodeURIComponent(String(entry[idField] ?? ""))}`;
      // published before (by this node, or the PUT says whose it is): a new revision
      const before = await callAgent(agent, path);
      await before.body?.cancel();
      answer = await getJson(agent, before.ok ? path : base, {
        method: before.ok ? "PUT" : "POST",
        body,
      });
    }
    if (parsed.values.json || action !== "ls") {
      println(JSON.stringify(answer, null, 2));
      return 0;
    }
    const entries = (answer as Record<string, EntryView[]>)[kind]!;
    println(formatTable(
      ["ID", "NAME", "VERSION", "TYPE", "REVISION", "OWNER"],
      entries.map((e) => [
        String(e[idField]),
        String(e.name),
        String(e.version),
        String(e.model_type ?? e.agent_type),
        String(e.revision),
        shortPeerId(e.owner_id),
      ]),
    ));
    return 0;
  },
};
