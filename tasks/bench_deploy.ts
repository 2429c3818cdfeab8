/**
 * Deployment benchmark: one directive for a small native binary to N agents on this machine;
 * per node, the seconds from `issued_at` to `active` (both stamped by the same clock), as p50
 * and p99, split into the phases of the node's history, and the CPU the agents spent on the
 * deployment beyond their idle load. Baseline: the same for N = 1. And a node that joins after
 * the deployment: how long it takes to catch up.
 * @module
 */
import { type AgentProcess, runLoam, startAgent } from "../tests/e2e/harness.ts";
import { eventually, peersOf } from "../tests/e2e/mesh_helpers.ts";
import { sha256Hex, startBlobServer } from "../tests/fixtures/blob_server.ts";
import { type BenchRow, percentile, shell, timed } from "./bench_util.ts";
import { sleep } from "../src/system/sleep.ts";

/** Stays up past the start check without load (a `sleep 0.1` loop in 20 copies forked 200/s). */
const PROGRAM = new TextEncoder().encode("#!/bin/sh\nexec sleep 120\n");
/** Linux's USER_HZ: the unit of utime and stime in /proc/<pid>/stat. */
const CLOCK_TICKS = 100;

interface Record {
  state: string;
  directive: { issued_at: string };
  history: { state: string; at: string }[];
}

/** One node's seconds: in all, and per phase of its history. */
interface NodeTimes {
  total: number;
  /** issued → pending: the directive reaching the node and being accepted. */
  reach: number;
  /** downloading → activating: fetch, verify, store. */
  fetch: number;
  /** activating → active: install and start (with the native start check). */
  activate: number;
}

/** What a fleet's deployment took. */
interface FleetResult {
  nodes: NodeTimes[];
  /** CPU seconds the agents used from publishing until every node was active. */
  cpu: number;
  /** CPU seconds the same agents used idle over the same length of time. */
  idleCpu: number;
}

async function cpuSeconds(agents: AgentProcess[]): Promise<number> {
  // Deno refuses to read /proc/<pid> without --allow-all; cat may
  const stats = await shell(`cat ${agents.map((a) => `/proc/${a.pid}/stat`).join(" ")}`);
  let ticks = 0;
  for (const line of stats.trim().split("\n")) {
    // the fields after "(comm) ": utime and stime are the 12th and 13th
    const fields = line.split(") ")[1]!.split(" ");
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / CLOCK_TICKS;
}

function nodeTimes(record: Record): NodeTimes {
  const at = (state: string) =>
    Date.parse(record.history.find((h) => h.state === state)?.at ?? record.directive.issued_at);
  const issued = Date.parse(record.directive.issued_at);
  return {
    total: (at("active") - issued) / 1000,
    reach: (at("pending") - issued) / 1000,
    fetch: (at("activating") - at("downloading")) / 1000,
    activate: (at("active") - at("activating")) / 1000,
  };
}

/** Starts `count` agents (the first is everyone's bootstrap), deploys, returns what it took. */
async function deployToFleet(
  dir: string,
  count: number,
  url: string,
  round: string,
): Promise<FleetResult> {
  const key = `${dir}/c2-${round}.key`;
  const c2 =
    JSON.parse((await runLoam(["keys", "generate", "--out", key, "--json"])).stdout).peer_id;
  // adverts every 10 s (default 30): every 2 s, 20 agents' signed adverts alone saturated 2 cores
  const trust = ["--set", `mesh.trusted_issuers=${c2}`, "--set", "mesh.advert_interval=10"];
  const first = await startAgent(`${dir}/${round}-0`, trust);
  const agents: AgentProcess[] = [first];
  try {
    for (let i = 1; i < count; i += 4) {
      const batch = Array.from({ length: Math.min(4, count - i) }, (_, k) => i + k);
      agents.push(
        ...await Promise.all(
          batch.map((n) =>
            startAgent(`${dir}/${round}-${n}`, ["--bootstrap", first.meshAddrs[0]!, ...trust])
          ),
        ),
      );
    }
    for (const agent of agents) {
      await eventually(
        "gossip reaches every agent",
        async () => count === 1 || (await peersOf(agent)).some((p) => p.advert),
        60_000,
      );
    }
    const idleFrom = await cpuSeconds(agents);
    const [, idleSeconds] = await timed(() => sleep(5000));
    const idleRate = (await cpuSeconds(agents) - idleFrom) / idleSeconds;
    const id = `bench-${round}`;
    const cpuFrom = await cpuSeconds(agents);
    const started = performance.now();
    const res = await runLoam([
      "deploy",
      "--key",
      key,
      "--bootstrap",
      first.meshAddrs[0]!,
      "--listen",
      "/ip4/127.0.0.1/tcp/0",
      "--artifact-url",
      url,
      "--sha256",
      sha256Hex(PROGRAM),
      "--size",
      String(PROGRAM.length),
      "--type",
      "native_binary",
      "--id",
      id,
    ]);
    if (res.code !== 0) throw new Error(`loam deploy failed: ${res.stderr}`);
    const nodes: NodeTimes[] = [];
    for (const agent of agents) {
      const record = await eventually(`${id} active`, async () => {
        const r = await agent.request(`/v1/deployments/${id}`, { token: agent.adminToken() });
        const body = r.status === 200 ? await r.json() as Record : undefined;
        return body?.state === "active" ? body : undefined;
      }, 120_000);
      nodes.push(nodeTimes(record));
    }
    const window = (performance.now() - started) / 1000;
    return { nodes, cpu: await cpuSeconds(agents) - cpuFrom, idleCpu: idleRate * window };
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
  }
}

/**
 * A node that joins after the deployment: seconds from its `agent ready` to `active` (the
 * directive comes over /loam/directives-sync/1 from the node it bootstraps to), and the online
 * node's issued → active for comparison.
 */
async function lateJoin(dir: string, url: string): Promise<{ online: number; late: number }> {
  const key = `${dir}/c2-late.key`;
  const c2 =
    JSON.parse((await runLoam(["keys", "generate", "--out", key, "--json"])).stdout).peer_id;
  const trust = ["--set", `mesh.trusted_issuers=${c2}`];
  const online = await startAgent(`${dir}/late-a`, trust);
  const agents = [online];
  const id = "bench-late";
  const activeRecord = (agent: AgentProcess) =>
    eventually(`${id} active`, async () => {
      const r = await agent.request(`/v1/deployments/${id}`, { token: agent.adminToken() });
      const body = r.status === 200 ? await r.json() as Record : undefined;
      return body?.state === "active" ? body : undefined;
    }, 120_000);
  try {
    const res = await runLoam([
      "deploy",
      ...["--key", key, "--bootstrap", online.meshAddrs[0]!, "--listen", "/ip4/127.0.0.1/tcp/0"],
      ...["--artifact-url", url, "--sha256", sha256Hex(PROGRAM), "--size", String(PROGRAM.length)],
      ...["--type", "native_binary", "--id", id],
    ]);
    if (res.code !== 0) throw new Error(`loam deploy failed: ${res.stderr}`);
    const first = nodeTimes(await activeRecord(online));
    const late = await startAgent(`${dir}/late-b`, [
      "--bootstrap",
      online.meshAddrs[0]!,
      ...trust,
    ]);
    const readyAt = Date.now();
    agents.push(late);
    const record = await activeRecord(late);
    const activeAt = Date.parse(record.history.find((h) => h.state === "active")!.at);
    return { online: first.total, late: (activeAt - readyAt) / 1000 };
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
  }
}

/** Measures directive → active for a fleet of `count` agents; returns the table rows. */
export async function benchDeploy(
  dir: string,
  count = Number(Deno.env.get("LOAM_BENCH_AGENTS") ?? "8"),
): Promise<BenchRow[]> {
  await Deno.mkdir(dir, { recursive: true });
  await using http = startBlobServer({ "/program": { body: PROGRAM } });
  console.error("deploy: one agent");
  const single = await deployToFleet(dir, 1, http.url("/program"), "one");
  console.error(`deploy: ${count} agents`);
  const fleet = await deployToFleet(dir, count, http.url("/program"), "fleet");
  console.error("deploy: a node that joins afterwards");
  const late = await lateJoin(dir, http.url("/program"));
  const p50 = (phase: keyof NodeTimes, result: FleetResult) =>
    percentile(result.nodes.map((n) => n[phase]), 50);
  const fleetName = `${count} agents`;
  return [
    [
      `directive → active, ${fleetName}, p50 (s) vs 1 agent`,
      p50("total", fleet),
      p50("total", single),
      "<= 1.5 s",
    ],
    [
      `directive → active, ${fleetName}, p99 (s) vs 1 agent`,
      percentile(fleet.nodes.map((n) => n.total), 99),
      p50("total", single),
      "<= 3 s",
    ],
    [
      `… issued → accepted on the node, p50 (s) vs 1 agent`,
      p50("reach", fleet),
      p50("reach", single),
      "reference",
    ],
    [
      `… download, verify, store, p50 (s) vs 1 agent`,
      p50("fetch", fleet),
      p50("fetch", single),
      "reference",
    ],
    [
      `… install and start (1 s start check), p50 (s) vs 1 agent`,
      p50("activate", fleet),
      p50("activate", single),
      "reference",
    ],
    [
      "late node: ready → active, over directives-sync (s) vs an online node's issued → active",
      late.late,
      late.online,
      "reference",
    ],
    [
      `CPU of the ${fleetName} until all active (CPU-s) vs the same agents idle as long`,
      fleet.cpu,
      fleet.idleCpu,
      "reference",
      "diff",
    ],
  ];
}
