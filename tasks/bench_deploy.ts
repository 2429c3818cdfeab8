/**
 * Deployment benchmark: one directive for a small native binary to N agents on this machine;
 * per node, the seconds from `issued_at` to `active` (both stamped by the same clock), as p50
 * and p99. Baseline: the same for N = 1.
 * @module
 */
import { type AgentProcess, runLoam, startAgent } from "../tests/e2e/harness.ts";
import { eventually, peersOf } from "../tests/e2e/mesh_helpers.ts";
import { sha256Hex, startBlobServer } from "../tests/fixtures/blob_server.ts";
import { type BenchRow, percentile } from "./bench_util.ts";

const PROGRAM = new TextEncoder().encode(
  "#!/bin/sh\ni=0\nwhile [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done\n",
);

interface Record {
  state: string;
  directive: { issued_at: string };
  history: { state: string; at: string }[];
}

/** Starts `count` agents (the first is everyone's bootstrap), deploys, returns seconds per node. */
async function deployToFleet(
  dir: string,
  count: number,
  url: string,
  round: string,
): Promise<number[]> {
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
    const id = `bench-${round}`;
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
    const seconds: number[] = [];
    for (const agent of agents) {
      const record = await eventually(`${id} active`, async () => {
        const r = await agent.request(`/v1/deployments/${id}`, { token: agent.adminToken() });
        const body = r.status === 200 ? await r.json() as Record : undefined;
        return body?.state === "active" ? body : undefined;
      }, 120_000);
      const activeAt = record.history.find((h) => h.state === "active")!.at;
      seconds.push((Date.parse(activeAt) - Date.parse(record.directive.issued_at)) / 1000);
    }
    return seconds;
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
  return [
    [
      `directive → active, ${count} agents, p50 (s) vs 1 agent`,
      percentile(fleet, 50),
      single[0]!,
      "<= 1.5 s",
    ],
    [
      `directive → active, ${count} agents, p99 (s) vs 1 agent`,
      percentile(fleet, 99),
      single[0]!,
      "<= 3 s",
    ],
  ];
}
