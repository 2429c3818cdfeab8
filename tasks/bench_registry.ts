/**
 * `deno task bench registry`: the replicated registry with 1,000 entries. B is away while A
 * publishes them; from B's start, how long until it holds them all (through
 * `/loam/registry-sync/1`) next to how long until it is connected to A at all; the bytes it keeps
 * next to the entries' own JSON; and the memory 1,000 entries take.
 * @module
 */
import { join } from "node:path";
import { type AgentProcess, startAgent } from "../tests/e2e/harness.ts";
import { type BenchRow, median } from "./bench_util.ts";
import { sleep } from "../src/system/sleep.ts";

const ENTRIES = 1000;
const ROUNDS = 3;

async function get(agent: AgentProcess, path: string): Promise<Response> {
  return await agent.request(path, { token: agent.adminToken() });
}

async function count(agent: AgentProcess): Promise<number> {
  return (await (await get(agent, "/v1/registry/models")).json()).models.length;
}

/** The agent's resident memory, as its /metrics says, after a moment to settle. */
async function rss(agent: AgentProcess): Promise<number> {
  await sleep(2000);
  const text = await (await get(agent, "/metrics")).text();
  return Number(/^process_resident_memory_bytes (\d+)/m.exec(text)![1]);
}

/** The rows of the registry table. */
export async function benchRegistry(dir: string): Promise<BenchRow[]> {
  const flags = ["--set", "mesh.mdns=false"];
  const a = await startAgent(join(dir, "a"), flags);
  const converge: number[] = [];
  const connect: number[] = [];
  let synced = 0;
  let listed = 0;
  try {
    for (let i = 0; i < ENTRIES; i++) {
      const res = await a.request("/v1/registry/models", {
        method: "POST",
        token: a.adminToken(),
        body: JSON.stringify({
          model_id: `model-${i}`,
          name: `Model ${i}`,
          version: "1.0.0",
          tags: ["bench", `t${i % 10}`],
        }),
      });
      if (res.status !== 201) throw new Error(`entry ${i}: ${res.status} ${await res.text()}`);
    }
    for (let round = 0; round < ROUNDS; round++) {
      // a node that was away: an empty data dir, joining after everything was published
      const b = await startAgent(join(dir, `b${round}`), [
        ...flags,
        "--bootstrap",
        a.meshAddrs[0]!,
      ]);
      try {
        const started = performance.now();
        let connected = 0;
        while (await count(b) < ENTRIES) {
          if (!connected && (await (await get(b, "/v1/peers")).json()).peers.length > 0) {
            connected = performance.now() - started;
          }
          await sleep(20);
        }
        converge.push(performance.now() - started);
        connect.push(connected || performance.now() - started);
      } finally {
        await b.stop(); // its registry is on disk once it has stopped
      }
      synced = (await Deno.stat(join(b.dataDir, "registry.json"))).size;
      const body = await (await get(a, "/v1/registry/models")).text();
      listed = new TextEncoder().encode(body).length;
    }
  } finally {
    await a.stop();
  }
  // memory: A again, loading its 1,000 entries from disk, next to an agent with none
  const loaded = await startAgent(join(dir, "a"), flags);
  const withEntries = await rss(loaded);
  await loaded.stop();
  const empty = await startAgent(join(dir, "empty"), flags);
  const without = await rss(empty);
  await empty.stop();
  return [
    [
      `a node back from away: ready → ${ENTRIES} entries synced (ms)`,
      median(converge),
      median(connect),
      "seconds; baseline: ready → connected to A",
      "diff",
    ],
    [
      `signed documents held for ${ENTRIES} entries (KiB)`,
      synced / 1024,
      listed / 1024,
      "baseline: the entries' own JSON",
      "ratio",
    ],
    [
      `agent RSS with ${ENTRIES} entries loaded (MiB)`,
      withEntries / 2 ** 20,
      without / 2 ** 20,
      "a few MiB per 1,000",
      "diff",
    ],
  ];
}
