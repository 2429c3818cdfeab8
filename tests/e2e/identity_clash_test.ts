import assert from "node:assert/strict";
import { type AgentProcess, freePort, runLoam, startAgent, tempDir } from "./harness.ts";
import { eventually, peerIdOf, peersOf } from "./mesh_helpers.ts";
import { sha256Hex, startBlobServer } from "../fixtures/blob_server.ts";

/** An entry of /v1/status `identity_problems`. */
interface Problem {
  kind: string;
  peer_id: string;
  node_id: string | null;
  addresses: string[];
  detected_by: string;
  message: string;
  first_seen_at: string;
  last_seen_at: string;
}

async function problemsOf(agent: AgentProcess): Promise<Problem[]> {
  const res = await agent.request("/v1/status", { token: agent.adminToken() });
  return (await res.json()).identity_problems;
}

/** Waits until `agent` lists a problem matching `match`, and returns it. */
function problem(agent: AgentProcess, what: string, match: (p: Problem) => boolean, ms = 30_000) {
  return eventually(what, async () => (await problemsOf(agent)).find(match), ms);
}

Deno.test("a copied identity key is reported loudly: by the copy, the original and a third node", async () => {
  await using dir = await tempDir();
  // the hub knows its address and peer id in advance, and has itself in its bootstrap list (a
  // fleet-wide list): its own entries, by address and by name, are not a clash
  await Deno.mkdir(`${dir.path}/hub`, { mode: 0o700 });
  const hubKey = await runLoam([
    "keys",
    "generate",
    "--out",
    `${dir.path}/hub/identity.key`,
    "--json",
  ]);
  const hubId = JSON.parse(hubKey.stdout).peer_id;
  const port = freePort();
  const hub = await startAgent(`${dir.path}/hub`, [
    "--node-id",
    "hub",
    "--mesh-listen",
    `/ip4/127.0.0.1/tcp/${port}`,
    "--bootstrap",
    `/ip4/127.0.0.1/tcp/${port}/p2p/${hubId}`,
    "--bootstrap",
    `/dns4/localhost/tcp/${port}/p2p/${hubId}`,
    "--set",
    "mesh.advert_interval=2",
  ]);
  const agents = [hub];
  try {
    const original = await startAgent(`${dir.path}/original`, [
      "--node-id",
      "jetson",
      "--bootstrap",
      hub.meshAddrs[0]!,
      "--set",
      "mesh.advert_interval=2",
    ]);
    agents.push(original);
    await eventually("original joined", async () => (await peersOf(original)).length > 0);
    await Deno.mkdir(`${dir.path}/clone`, { mode: 0o700 });
    await Deno.copyFile(`${dir.path}/original/identity.key`, `${dir.path}/clone/identity.key`);
    await Deno.chmod(`${dir.path}/clone/identity.key`, 0o600);
    // the golden-image case: the clone's config names the original as its bootstrap peer
    const clone = await startAgent(`${dir.path}/clone`, [
      "--node-id",
      "jetson",
      "--bootstrap",
      original.meshAddrs[0]!,
      "--bootstrap",
      hub.meshAddrs[0]!,
      "--set",
      "mesh.advert_interval=2",
    ]);
    agents.push(clone);
    const shared = peerIdOf(original);
    assert.equal(peerIdOf(clone), shared);
    const originalAddr = original.meshAddrs[0]!.replace(/\/p2p\/.*/, "");

    const byClone = await problem(
      clone,
      "the clone reports the original",
      (p) => p.kind === "peer_id_clash" && p.detected_by === "bootstrap_dial",
    );
    assert.equal(byClone.peer_id, shared);
    assert.deepEqual(byClone.addresses, [originalAddr]);
    assert.match(byClone.message, new RegExp(`peer id ${shared} is also used by ${originalAddr}`));
    assert.match(byClone.message, /delete identity\.key in the data dir of one of them/);
    const cloneLog = clone.logs.find((l) => l.msg === byClone.message);
    assert.equal(cloneLog?.level, "error", "the clone logs the clash at error level");

    const byOriginal = await problem(
      original,
      "the original reports the clone",
      (p) => p.kind === "peer_id_clash" && p.detected_by === "inbound_connection",
    );
    assert.equal(byOriginal.peer_id, shared);
    assert.deepEqual(byOriginal.addresses, ["/ip4/127.0.0.1"]);
    assert.equal(original.logs.find((l) => l.msg === byOriginal.message)?.level, "error");

    // the hub sees two processes behind one peer id, each announcing its own listen address
    const byHub = await problem(
      hub,
      "the hub reports two nodes behind one peer id",
      (p) => p.kind === "peer_id_clash_seen",
    );
    assert.equal(byHub.peer_id, shared);
    assert.equal(byHub.addresses.length, 2);
    assert.match(byHub.message, new RegExp(`peer id ${shared} is used by two nodes at once`));
    assert.equal(hub.logs.find((l) => l.msg === byHub.message)?.level, "error");
    assert.ok(
      (await problemsOf(hub)).every((p) => p.peer_id === shared),
      "the hub's own bootstrap entries (its address, and localhost) are no clash",
    );
    assert.ok(
      (await problemsOf(clone)).every((p) => p.kind === "peer_id_clash"),
      "one node id on one peer id is not a node id clash",
    );
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
  }
});

const SERVICE = new TextEncoder().encode(
  '#!/bin/sh\necho "up $LOAM_INSTANCE_ID"\ni=0\nwhile [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done\n',
);

Deno.test("two nodes with one node id: both report it, loam deploy --watch counts and names both", async () => {
  await using dir = await tempDir();
  const key = `${dir.path}/c2.key`;
  const c2 = JSON.parse((await runLoam(["keys", "generate", "--out", key, "--json"])).stdout)
    .peer_id;
  await using http = startBlobServer({ "/svc": { body: SERVICE } });
  const common = [
    "--node-id",
    "twin",
    "--set",
    `mesh.trusted_issuers=${c2}`,
    "--set",
    "mesh.advert_interval=1",
  ];
  const a = await startAgent(`${dir.path}/a`, common);
  const agents = [a];
  try {
    const b = await startAgent(`${dir.path}/b`, [...common, "--bootstrap", a.meshAddrs[0]!]);
    agents.push(b);
    const [idA, idB] = [peerIdOf(a), peerIdOf(b)];
    for (const [agent, other] of [[a, idB], [b, idA]] as const) {
      const clash = await problem(
        agent,
        "node id clash reported",
        (p) => p.kind === "node_id_clash" && p.peer_id === other,
      );
      assert.equal(clash.node_id, "twin");
      assert.match(
        clash.message,
        new RegExp(`node id "twin" of this node .* also used by peer ${other}`),
      );
      assert.equal(agent.logs.find((l) => l.msg === clash.message)?.level, "warn");
    }

    const watch = await runLoam([
      "deploy",
      "--key",
      key,
      "--bootstrap",
      a.meshAddrs[0]!,
      "--listen",
      "/ip4/127.0.0.1/tcp/0",
      "--artifact-url",
      http.url("/svc"),
      "--sha256",
      sha256Hex(SERVICE),
      "--size",
      String(SERVICE.length),
      "--type",
      "native_binary",
      "--id",
      "twin-svc",
      "--quiet-seconds",
      "2",
      "--timeout",
      "60",
      "--watch",
    ]);
    assert.equal(watch.code, 0, watch.stderr);
    const [tailA, tailB] = [idA, idB].map((id) => id.slice(-8));
    assert.match(watch.stdout, new RegExp(`^twin\\s+${tailA}\\s+active\\s+100%$`, "m"));
    assert.match(watch.stdout, new RegExp(`^twin\\s+${tailB}\\s+active\\s+100%$`, "m"));
    assert.match(watch.stderr, /2 of 2 nodes active/);
    const warning = watch.stderr.split("\n").filter((l) => l.startsWith("warning: node id"));
    assert.equal(warning.length, 1, watch.stderr);
    assert.match(warning[0]!, /node id "twin" is reported by two peers/);
    assert.ok(warning[0]!.includes(tailA) && warning[0]!.includes(tailB), warning[0]);
  } finally {
    await Promise.all(agents.map((agent) => agent.stop()));
  }
});
