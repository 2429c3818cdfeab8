/**
 * Mesh benchmarks: a 512 MiB peer-to-peer transfer (libp2p stream alone, then agent to agent
 * with hashing and disk) against raw Deno TCP; gossip one-way latency against raw TCP; agent
 * start-to-ready against loading the same module graph; idle RSS against a bare Deno process.
 * @module
 */
import { generateKeyPair } from "@libp2p/crypto/keys";
import type { PrivateKey } from "@libp2p/interface";
import { Registry } from "prom-client";
import { createMeshNode, type MeshNode } from "../src/mesh/node.ts";
import { MeshMessaging } from "../src/mesh/messaging.ts";
import { openPeerBlob, serveBlobs } from "../src/mesh/blob_protocol.ts";
import { BlobStore } from "../src/blobs/store.ts";
import { createFleetKey } from "../src/mesh/fleet_key.ts";
import { fleetKeyProtector } from "../src/mesh/fleet_guard.ts";
import { createLogger } from "../src/system/logger.ts";
import { type AgentProcess, startAgent } from "../tests/e2e/harness.ts";
import { startTestPeer } from "../tests/fixtures/mesh_peer.ts";
import { agentFlags } from "./permissions.ts";
import { eventually, peerIdOf, peersOf, requestBlob } from "../tests/e2e/mesh_helpers.ts";
import { writeRandomFile } from "../tests/fixtures/blob_server.ts";
import { type BenchRow, median, percentile, shell, timed } from "./bench_util.ts";
import { sleep } from "../src/system/sleep.ts";

const SIZE = 512 * 1024 * 1024;
const MB = 1e6;
const MESSAGES = 1000;
const quiet = createLogger({ level: "error", format: "json", write: () => {} });
const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function rawTcpSeconds(): Promise<number> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const receiving = (async () => {
    const conn = await listener.accept();
    let got = 0;
    for await (const chunk of conn.readable) got += chunk.length;
    return got;
  })();
  const [, seconds] = await timed(async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const chunk = new Uint8Array(256 * 1024);
    for (let sent = 0; sent < SIZE; sent += chunk.length) {
      for (let w = 0; w < chunk.length;) w += await conn.write(chunk.subarray(w));
    }
    conn.close();
    if (await receiving !== SIZE) throw new Error("raw TCP lost bytes");
  });
  return seconds;
}

/**
 * Writing the same amount into a new file as the receiving agent does (1 MiB synchronous
 * writes): the disk's share of an agent-to-agent transfer. On this VM, page-cache pages the
 * guest has not used before are slow to hand out, so this varies from run to run.
 */
async function newFileWriteSeconds(path: string): Promise<number> {
  const piece = new Uint8Array(1 << 20);
  const [, seconds] = await timed(async () => {
    using file = await Deno.open(path, { write: true, createNew: true });
    for (let written = 0; written < SIZE; written += piece.length) {
      for (let w = 0; w < piece.length;) w += file.writeSync(piece.subarray(w));
    }
    await file.sync();
  });
  await Deno.remove(path);
  return seconds;
}

interface BenchNode {
  node: MeshNode;
  key: PrivateKey;
}

/** Two mesh nodes, b dialled to a (under `fleetKey` when given), and how long the dial took. */
async function meshPair(fleetKey?: Uint8Array): Promise<[BenchNode, BenchNode, number]> {
  const make = async () => {
    const key = await generateKeyPair("Ed25519");
    const node = await createMeshNode({
      privateKey: key,
      listen: "/ip4/127.0.0.1/tcp/0",
      bootstrap: [],
      network: "bench",
      mdns: false,
      maxMessageBytes: 1024 * 1024,
      connectionProtector: fleetKey && fleetKeyProtector(fleetKey, () => {}),
    });
    return { node, key };
  };
  const a = await make();
  const b = await make();
  const [, seconds] = await timed(() => b.node.dial(a.node.getMultiaddrs()[0]!));
  return [a, b, seconds];
}

/** Connection setup (TCP, pnet when keyed, noise, yamux) between fresh nodes, in ms. */
async function dialMs(fleetKey?: Uint8Array): Promise<number> {
  const [a, b, seconds] = await meshPair(fleetKey);
  await Promise.all([a.node.stop(), b.node.stop()]);
  return seconds * 1000;
}

async function libp2pStreamSeconds(
  dir: string,
  hex: string,
  fleetKey?: Uint8Array,
): Promise<number> {
  const [a, b] = await meshPair(fleetKey);
  try {
    await serveBlobs(a.node, new BlobStore(dir), new Registry(), quiet, { maxStreamsPerPeer: 8 });
    const [, seconds] = await timed(async () => {
      const peer = a.node.peerId.toString();
      const stream = await openPeerBlob(b.node, peer, hex, 0, AbortSignal.timeout(120_000));
      let got = 0;
      for await (const chunk of stream.chunks) got += chunk.length;
      if (got !== SIZE) throw new Error(`libp2p stream delivered ${got} bytes`);
    });
    return seconds;
  } finally {
    await Promise.all([a.node.stop(), b.node.stop()]);
  }
}

/** One-way latency of signed, validated status messages between two nodes (same clock). */
async function gossipLatencyMs(): Promise<number[]> {
  const [a, b] = await meshPair();
  try {
    const messaging = ({ node, key }: BenchNode) =>
      new MeshMessaging({
        node,
        network: "bench",
        trustedIssuers: [],
        maxMessageBytes: 1024 * 1024,
        privateKey: key,
        registry: new Registry(),
        logger: quiet,
      });
    const sender = messaging(a);
    const receiver = messaging(b);
    let arrived: (() => void) | undefined;
    receiver.on("status", () => arrived?.());
    await eventually("gossip subscription", () =>
      Promise.resolve(
        a.node.services.pubsub.getSubscribers(sender.topics.status).some((p) =>
          p.equals(b.node.peerId)
        ),
      ));
    const samples: number[] = [];
    for (let i = 0; i < MESSAGES; i++) {
      const received = new Promise<void>((resolve) => arrived = resolve);
      const started = performance.now();
      await sender.publish("status", {
        directive_id: `bench-${i}`,
        node_id: "bench",
        reported_at: new Date().toISOString(),
        state: "downloading",
        progress_percent: i % 100,
      });
      await received;
      samples.push(performance.now() - started);
    }
    return samples;
  } finally {
    await Promise.all([a.node.stop(), b.node.stop()]);
  }
}

async function rawTcpLatencyMs(): Promise<number[]> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const client = await Deno.connect({ hostname: "127.0.0.1", port });
  const server = await listener.accept();
  const buffer = new Uint8Array(1024);
  const message = new Uint8Array(300);
  const samples: number[] = [];
  for (let i = 0; i < MESSAGES; i++) {
    const started = performance.now();
    await client.write(message);
    let got = 0;
    while (got < message.length) got += (await server.read(buffer)) ?? 0;
    samples.push(performance.now() - started);
  }
  client.close();
  server.close();
  return samples;
}

async function idleRssMb(pid: number): Promise<number> {
  return Number((await shell(`ps -o rss= -p ${pid}`)).trim()) / 1024;
}

/** Measures the mesh in `dir`; returns the table rows. */
/** Seconds for `to` to fetch blob `hex` from `holder` (POST /v1/blobs), once its advert is in. */
async function agentTransferSeconds(
  holder: AgentProcess,
  to: AgentProcess,
  hex: string,
): Promise<number> {
  await eventually(
    "the holder's advert",
    async () =>
      (await peersOf(to)).some((p) => p.peer_id === peerIdOf(holder) && p.advert?.blobs === 1),
  );
  const [result, seconds] = await timed(() => requestBlob(to, { sha256: hex, size: SIZE }));
  if (result.status !== 200) {
    throw new Error(`agent transfer failed: ${JSON.stringify(result.body)}`);
  }
  return seconds;
}

/** Latencies of `/v1/status` (ms): `n` requests one after another, or fewer once `until` says so. */
async function statusLatencies(
  agent: AgentProcess,
  n: number,
  until: () => boolean = () => false,
): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n && !until(); i++) {
    const [res, seconds] = await timed(() =>
      agent.request("/v1/status", { token: agent.adminToken() })
    );
    await res.body?.cancel();
    out.push(seconds * 1000);
  }
  return out;
}

/**
 * `/v1/status` latency of an agent while a fleet member floods it with 10,000 gossip messages as
 * fast as it can, and of the same agent idle: [during, idle] in ms.
 */
async function statusUnderFlood(dir: string, keyFile: string): Promise<[number[], number[]]> {
  const victim = await startAgent(`${dir}/victim`, [
    "--fleet-key",
    keyFile,
    "--set",
    "mesh.mdns=false",
  ]);
  try {
    const idle = await statusLatencies(victim, 200);
    await using flooder = await startTestPeer({
      dial: victim.meshAddrs[0]!,
      fleetKey: await Deno.readFile(keyFile),
    });
    const junk = new TextEncoder().encode("not an envelope");
    let done = false;
    const flood = (async () => {
      for (let i = 0; i < 10_000; i++) await flooder.publish(flooder.topics.status, junk);
      done = true;
    })();
    const during = await statusLatencies(victim, 200, () => done);
    await flood;
    return [during, idle];
  } finally {
    await victim.stop();
  }
}

export async function benchMesh(dir: string): Promise<BenchRow[]> {
  console.error(`mesh: writing ${SIZE / 1024 / 1024} MiB of random data ...`);
  const storeDir = `${dir}/a/blobs`;
  await Deno.mkdir(`${storeDir}/sha256`, { recursive: true });
  const hex = await writeRandomFile(`${dir}/blob.bin`, SIZE);
  await Deno.rename(`${dir}/blob.bin`, `${storeDir}/sha256/${hex}`);

  const keyFile = `${dir}/fleet.key`;
  const fleetKey = (await createFleetKey(keyFile)).psk;
  console.error("mesh: raw TCP vs libp2p stream, with and without a fleet key (3 rounds)");
  const tcp: number[] = [];
  const stream: number[] = [];
  const keyedStream: number[] = [];
  for (let round = 0; round < 3; round++) {
    tcp.push(await rawTcpSeconds());
    stream.push(await libp2pStreamSeconds(storeDir, hex));
    keyedStream.push(await libp2pStreamSeconds(storeDir, hex, fleetKey));
  }
  const dials: number[] = [];
  const keyedDials: number[] = [];
  for (let round = 0; round < 5; round++) {
    dials.push(await dialMs());
    keyedDials.push(await dialMs(fleetKey));
  }

  console.error("mesh: agent to agent (POST /v1/blobs on b, a holds the blob)");
  const fast = ["--set", "mesh.advert_interval=1"];
  const started = performance.now();
  const a = await startAgent(`${dir}/a`, fast);
  const startMs = performance.now() - started;
  const b = await startAgent(`${dir}/b`, ["--bootstrap", a.meshAddrs[0]!, ...fast]);
  let agentSeconds: number;
  let idleRss: number;
  let servedRss: number;
  let receivedRss: number;
  try {
    await sleep(3000);
    idleRss = await idleRssMb(b.pid);
    agentSeconds = await agentTransferSeconds(a, b, hex);
    servedRss = await idleRssMb(a.pid);
    receivedRss = await idleRssMb(b.pid);
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
  console.error("mesh: agent to agent again, both holding a fleet key");
  const keyed = ["--fleet-key", keyFile, "--set", "mesh.mdns=false", ...fast];
  const ka = await startAgent(`${dir}/a`, keyed);
  const kb = await startAgent(`${dir}/kb`, ["--bootstrap", ka.meshAddrs[0]!, ...keyed]);
  let keyedAgentSeconds: number;
  try {
    keyedAgentSeconds = await agentTransferSeconds(ka, kb, hex);
  } finally {
    await Promise.all([ka.stop(), kb.stop()]);
  }
  const diskSeconds = await newFileWriteSeconds(`${dir}/disk-baseline.bin`);
  // `run --help` loads the same module graph as `run` and exits: the floor for start-up
  const [, loadSeconds] = await timed(() =>
    shell(`deno run ${agentFlags().join(" ")} ${MAIN} run --help`)
  );
  const bareRss = Number(
    (await shell(
      `deno eval 'await new Promise((r) => setTimeout(r, 3000))' & p=$!; sleep 2; ps -o rss= -p $p; wait $p`,
    )).trim(),
  ) / 1024;

  console.error("mesh: /v1/status while a member floods gossip");
  const [flooded, calm] = await statusUnderFlood(dir, keyFile);
  console.error(`mesh: gossip latency over ${MESSAGES} messages`);
  const gossip = await gossipLatencyMs();
  const tcpLatency = await rawTcpLatencyMs();
  const rate = (seconds: number) => SIZE / seconds / MB;
  return [
    [
      "p2p 512 MiB: libp2p stream (MB/s) vs raw TCP",
      rate(median(stream)),
      rate(median(tcp)),
      ">= 300 MB/s",
    ],
    [
      "p2p 512 MiB: agent to agent, hashed + on disk (MB/s) vs raw TCP",
      rate(agentSeconds),
      rate(median(tcp)),
      ">= 300 MB/s",
    ],
    [
      "p2p 512 MiB: libp2p stream with a fleet key (MB/s) vs without",
      rate(median(keyedStream)),
      rate(median(stream)),
      "small cost",
    ],
    [
      "p2p 512 MiB: agent to agent with a fleet key (MB/s) vs without",
      rate(keyedAgentSeconds),
      rate(agentSeconds),
      "small cost",
    ],
    [
      "connection setup, median of 5 (ms): with a fleet key vs without",
      median(keyedDials),
      median(dials),
      "small cost",
    ],
    [
      "p2p 512 MiB: agent to agent (MB/s) vs writing a new 512 MiB file",
      rate(agentSeconds),
      rate(diskSeconds),
      "reference",
    ],
    [
      "gossip one-way p50 (ms) vs raw TCP",
      percentile(gossip, 50),
      percentile(tcpLatency, 50),
      "reference",
    ],
    [
      "gossip one-way p99 (ms) vs raw TCP",
      percentile(gossip, 99),
      percentile(tcpLatency, 99),
      "reference",
    ],
    [
      "/v1/status p50 during a gossip flood (ms) vs idle",
      percentile(flooded, 50),
      percentile(calm, 50),
      "reference",
    ],
    [
      "/v1/status p99 during a gossip flood (ms) vs idle",
      percentile(flooded, 99),
      percentile(calm, 99),
      "reference",
    ],
    ["agent start to ready (ms) vs loading its modules", startMs, loadSeconds * 1000, "<= 400 ms"],
    ["idle agent RSS (MiB) vs bare Deno", idleRss, bareRss, "<= 64 MiB", "diff"],
    ["RSS after serving 512 MiB (MiB) vs idle agent", servedRss, idleRss, "reference", "diff"],
    ["RSS after receiving 512 MiB (MiB) vs idle agent", receivedRss, idleRss, "reference", "diff"],
  ];
}
