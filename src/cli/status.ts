import type { Command } from "./command.ts";
import { parseFlags, println } from "./command.ts";
import { CONFIG_OPTIONS, CONFIG_OPTIONS_HELP, loadConfigFromFlags } from "./config_flags.ts";
import { findAgent, getJson } from "./agent_client.ts";
import type { StatusReport } from "../api/status.ts";

function duration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return [d && `${d}d`, (d || h) && `${h}h`, (d || h || m) && `${m}m`, `${s}s`]
    .filter(Boolean).join(" ");
}

/** `2 active, 1 failed`, or `none`. */
function countsOf(states: string[]): string {
  if (states.length === 0) return "none";
  const counts = new Map<string, number>();
  for (const state of states) counts.set(state, (counts.get(state) ?? 0) + 1);
  return [...counts].map(([state, n]) => `${n} ${state}`).join(", ");
}

function gib(mb: number): string {
  return `${(mb / 1024).toFixed(1)} GiB`;
}

/** What runs on the node: deployments by state and the instances, for the summary. */
interface Workloads {
  deployments: { state: string }[];
  instances: { instance_id: string; adapter: string; state: string }[];
}

/** Renders a status report as aligned `label  value` lines for people. */
function formatStatus(s: StatusReport, work: Workloads): string {
  const hw = s.hardware;
  const gpus = hw.gpus.length === 0
    ? "none"
    : hw.gpus.map((g) => `${g.name} (${gib(g.vram_mb)}, ${g.kind})`).join("; ");
  const rows: [string, string][] = [
    ["node", `${s.node_id}${s.formation_id ? ` (formation ${s.formation_id})` : ""}`],
    ["state", s.ready ? "ready" : "not ready"],
    ["version", s.version],
    ["peer id", s.peer_id],
    ["uptime", duration(s.uptime_s)],
    ["api", s.api],
    ["data dir", s.data_dir],
    ["mesh", `${s.peer_count} peer${s.peer_count === 1 ? "" : "s"} on network "${s.network}"`],
    ["listening", s.listen_addrs.length ? s.listen_addrs.join("\n" + " ".repeat(14)) : "-"],
    [
      "admission",
      s.mesh?.open === false
        ? `fleet members only (fleet key ${s.mesh.fleet_key})`
        : "OPEN: anyone who can reach the mesh port can join (set mesh.fleet_key_file)",
    ],
    ["platform", `${s.os} ${s.arch}${hw.board_model ? ` (${hw.board_model})` : ""}`],
    ["cpu", `${hw.cpu.count} x ${hw.cpu.model}`],
    ["memory", `${gib(hw.ram.free_mb)} free of ${gib(hw.ram.total_mb)}`],
    ["disk", `${gib(hw.disk.free_mb)} free of ${gib(hw.disk.total_mb)} (data dir)`],
    ["gpus", gpus],
    ["capabilities", s.capabilities.length ? s.capabilities.join(", ") : "none configured"],
    ["deployments", countsOf(work.deployments.map((d) => d.state))],
    [
      "instances",
      work.instances.length === 0
        ? "none"
        : work.instances.map((i) => `${i.instance_id} (${i.adapter}, ${i.state})`).join(
          "\n" +
            " ".repeat(14),
        ),
    ],
  ];
  for (const problem of s.identity_problems ?? []) rows.push(["IDENTITY", problem.message]);
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join("\n");
}

/** `loam status`: asks the local agent and prints a summary (or the raw JSON). */
export const statusCommand: Command = {
  name: "status",
  help: `Usage: loam status [--json] [--token <token>] [options]

Reads /v1/status (and the deployments and instances, for the workloads rows) from the agent
found through the same config and data dir as 'loam run': the address it wrote to
<data>/api/address, else api.listen (token: --token, else <data>/api/admin.token). Exit 1 when the
agent cannot be reached.

  --json                 print the raw status object
  --token <token>        API token with scope status:read

${CONFIG_OPTIONS_HELP}`,
  async run(args) {
    const parsed = parseFlags("status", args, {
      ...CONFIG_OPTIONS,
      json: { type: "boolean" },
      token: { type: "string" },
    });
    if (parsed.help) {
      println(this.help);
      return 0;
    }
    const loaded = await loadConfigFromFlags(parsed.values);
    const endpoint = await findAgent(loaded, parsed.values.token);
    const report = await getJson(endpoint, "/v1/status") as StatusReport;
    if (parsed.values.json) {
      println(JSON.stringify(report, null, 2));
      return 0;
    }
    const [deployments, instances] = await Promise.all([
      getJson(endpoint, "/v1/deployments"),
      getJson(endpoint, "/v1/instances"),
    ]) as [Pick<Workloads, "deployments">, Pick<Workloads, "instances">];
    println(formatStatus(report, { ...deployments, ...instances }));
    return 0;
  },
};
