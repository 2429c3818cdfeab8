import assert from "node:assert/strict";
import { type AgentProcess, runLoam, spawnAgent, startAgent, tempDir } from "./harness.ts";
import {
  eventually,
  hasConnectedAdvert,
  metric,
  peerIdOf,
  peersOf,
  requestBlob,
} from "./mesh_helpers.ts";
import { startTestPeer } from "../fixtures/mesh_peer.ts";
import { sha256Hex, startBlobServer, writeRandomFile } from "../fixtures/blob_server.ts";

const FAST = ["--set", "mesh.advert_interval=1"];
/** Keyed agents turn mDNS on by default; these tests dial by bootstrap address only. */
const NO_MDNS = ["--set", "mesh.mdns=false"];
const BLOB_SIZE = 3 * 1024 * 1024;

async function fleetKey(path: string): Promise<string> {
  const res = await runLoam(["keys", "fleet", "--out", path]);
  assert.equal(res.code, 0, res.stderr);
  const fingerprint = res.stdout.match(/fleet key (sha256:[0-9a-f]{16}) written/)?.[1];
  assert.ok(fingerprint, res.stdout);
  assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
  return fingerprint;
}

async function meshStatus(agent: AgentProcess): Promise<{ open: boolean; fleet_key: string }> {
  const res = await agent.request("/v1/status", { token: agent.adminToken() });
  return (await res.json()).mesh;
}

Deno.test("fleet members mesh and share blobs; peers with no key or another key get nothing", async () => {
  await using dir = await tempDir();
  const key = await fleetKey(`${dir.path}/fleet.key`);
  const otherKey = await fleetKey(`${dir.path}/other.key`);
  assert.notEqual(key, otherKey);
  const source = `${dir.path}/blob.bin`;
  const hex = await writeRandomFile(source, BLOB_SIZE);
  await using http = startBlobServer({ "/blob": { body: { file: source, size: BLOB_SIZE } } });
  const member = (name: string, file = "fleet.key", more: string[] = []) =>
    startAgent(`${dir.path}/${name}`, [
      "--fleet-key",
      `${dir.path}/${file}`,
      ...NO_MDNS,
      ...FAST,
      ...more,
    ]);
  const a = await member("a");
  const agents = [a];
  try {
    assert.equal((await requestBlob(a, { sha256: hex, urls: [http.url("/blob")] })).status, 200);
    await http.close();
    const boot = ["--bootstrap", a.meshAddrs[0]!];
    const b = await member("b", "fleet.key", boot);
    const open = await startAgent(`${dir.path}/open`, [...boot, ...FAST]);
    const other = await member("other", "other.key", boot);
    agents.push(b, open, other);

    assert.deepEqual(await meshStatus(a), { open: false, fleet_key: key });
    assert.deepEqual(await meshStatus(other), { open: false, fleet_key: otherKey });
    assert.deepEqual(await meshStatus(open), { open: true, fleet_key: null });
    assert.ok(
      open.logs.some((l) => l.level === "warn" && /the mesh is open/.test(l.msg)),
      "an open agent says so at start",
    );
    const status = await runLoam([
      "status",
      "--data-dir",
      a.dataDir,
      "--api-listen",
      "127.0.0.1:0",
    ]);
    assert.match(
      status.stdout,
      new RegExp(`admission\\s+fleet members only \\(fleet key ${key}\\)`),
    );

    // the member sees a's advert and fetches the blob from it, with no URL
    await eventually(
      "b has a's advert listing the blob",
      async () =>
        (await peersOf(b)).some((p) => p.peer_id === peerIdOf(a) && p.advert?.blobs === 1),
    );
    const fetched = await requestBlob(b, { sha256: hex, size: BLOB_SIZE });
    assert.equal(fetched.status, 200, JSON.stringify(fetched.body));

    // the others never get a connection: a counts and logs them as mismatches
    await eventually(
      "a counted both refusals",
      async () => (await metric(a, "loam_mesh_fleet_key_mismatches_total")) >= 2,
    );
    const refusals = a.logs.filter((l) => l.msg.startsWith("fleet key mismatch"));
    assert.ok(
      refusals.length >= 1 && refusals.every((l) =>
        /^\/ip4\/127\.0\.0\.1\//.test(
          String(l.remote),
        )
      ),
      JSON.stringify(refusals),
    );
    for (const stranger of [open, other]) {
      assert.deepEqual(
        (await peersOf(stranger)).filter((p) => p.connected || p.advert),
        [],
        "no connection, no advert",
      );
      const res = await requestBlob(stranger, { sha256: hex, size: BLOB_SIZE });
      assert.notEqual(res.status, 200, "no blob by hash");
    }
    assert.ok(
      (await peersOf(a)).every((p) => p.peer_id === peerIdOf(b)),
      "a knows only the member",
    );

    // a libp2p peer of its own (not an agent) gets in with the key file's bytes, and not without
    const keyBytes = await Deno.readFile(`${dir.path}/fleet.key`);
    await using peer = await startTestPeer({ dial: a.meshAddrs[0]!, fleetKey: keyBytes });
    await eventually(
      "the keyed test peer receives adverts",
      () => Promise.resolve(peer.received(peer.topics.adverts).length > 0),
    );
    await assert.rejects(startTestPeer({ dial: a.meshAddrs[0]! }));
  } finally {
    await Promise.all(agents.map((x) => x.stop()));
  }
});

Deno.test("a fleet key that cannot be read or is not a swarm.key stops start-up in one line", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/bad.key`, "/key/swarm/psk/1.0.0/\n/base16/\nnot-hex\n");
  for (
    const [file, expected] of [
      ["missing.key", /cannot read fleet key .*missing\.key/],
      ["bad.key", /fleet key .*bad\.key is not a swarm\.key file/],
    ] as const
  ) {
    const agent = spawnAgent(`${dir.path}/data`, ["--fleet-key", `${dir.path}/${file}`]);
    const { code, stderr } = await agent.exited();
    assert.equal(code, 2, stderr);
    const lines = stderr.trim().split("\n").filter((l) => !l.startsWith("{"));
    assert.equal(lines.length, 1, stderr);
    assert.match(lines[0]!, expected);
  }
});

Deno.test("with a fleet key, mDNS is on by default: two members find each other with no address", async () => {
  await using dir = await tempDir();
  await fleetKey(`${dir.path}/fleet.key`);
  // a network of its own, so no other test's agents answer
  const net = ["--set", `mesh.network=fleet-${crypto.randomUUID().slice(0, 8)}`];
  const args = ["--fleet-key", `${dir.path}/fleet.key`, ...net, ...FAST];
  const x = await startAgent(`${dir.path}/x`, args);
  const y = await startAgent(`${dir.path}/y`, args);
  try {
    await eventually(
      "x and y find each other by mDNS and exchange adverts",
      () => hasConnectedAdvert(y, x),
    );
  } finally {
    await Promise.all([x.stop(), y.stop()]);
  }
});

Deno.test("loam deploy --fleet-key reaches a keyed fleet; without the key it says what is missing", async () => {
  await using dir = await tempDir();
  const key = `${dir.path}/fleet.key`;
  await fleetKey(key);
  const c2Key = `${dir.path}/c2.key`;
  const c2 = JSON.parse((await runLoam(["keys", "generate", "--out", c2Key, "--json"])).stdout)
    .peer_id;
  const program = new TextEncoder().encode("#!/bin/sh\nexec sleep 60\n");
  await using http = startBlobServer({ "/prog": { body: program } });
  const a = await startAgent(`${dir.path}/a`, [
    "--fleet-key",
    key,
    "--set",
    `mesh.trusted_issuers=${c2}`,
    ...NO_MDNS,
    ...FAST,
  ]);
  try {
    const deploy = (more: string[]) =>
      runLoam([
        "deploy",
        "--key",
        c2Key,
        "--bootstrap",
        a.meshAddrs[0]!,
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--artifact-url",
        http.url("/prog"),
        "--sha256",
        sha256Hex(program),
        "--size",
        String(program.length),
        "--type",
        "native_binary",
        "--quiet-seconds",
        "1",
        "--timeout",
        "60",
        ...more,
      ]);
    const ok = await deploy(["--fleet-key", key, "--id", "keyed", "--watch"]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /\sactive\s+100%$/m);
    const refused = await deploy(["--id", "open"]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /no agent reachable .*needs --fleet-key/);
  } finally {
    await a.stop();
  }
});

Deno.test("with mesh.allowed_peers, an unlisted fleet member is refused at connect and counted", async () => {
  await using dir = await tempDir();
  const key = `${dir.path}/fleet.key`;
  await fleetKey(key);
  const ids = await Promise.all(["b", "c"].map(async (n) => {
    const file = `${dir.path}/${n}/identity.key`;
    await Deno.mkdir(`${dir.path}/${n}`, { recursive: true });
    const made = await runLoam(["keys", "generate", "--out", file, "--json"]);
    return JSON.parse(made.stdout).peer_id as string;
  }));
  const keyed = ["--fleet-key", key, ...NO_MDNS, ...FAST];
  const a = await startAgent(`${dir.path}/a`, [...keyed, "--set", `mesh.allowed_peers=${ids[0]}`]);
  const boot = ["--bootstrap", a.meshAddrs[0]!];
  const b = await startAgent(`${dir.path}/b`, [...keyed, ...boot]);
  const c = await startAgent(`${dir.path}/c`, [...keyed, ...boot]);
  try {
    assert.equal(peerIdOf(b), ids[0]);
    assert.equal(peerIdOf(c), ids[1]);
    await eventually(
      "b, listed, has a's advert",
      async () => (await peersOf(b)).some((p) => p.peer_id === peerIdOf(a) && p.advert),
    );
    await eventually(
      "a refused c",
      async () =>
        (await metric(a, 'loam_mesh_unlisted_peers_refused_total{direction="inbound"}')) >= 1,
    );
    assert.ok(
      a.logs.some((l) =>
        l.msg.startsWith("refused a peer that is not in mesh.allowed_peers") &&
        l.peer === ids[1]
      ),
    );
    assert.deepEqual((await peersOf(c)).filter((p) => p.connected), [], "c has no connection");
    assert.ok((await peersOf(a)).every((p) => p.peer_id !== ids[1]), "a never lists c");
  } finally {
    await Promise.all([a, b, c].map((x) => x.stop()));
  }
});
