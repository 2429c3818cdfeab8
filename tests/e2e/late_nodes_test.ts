/**
 * Late nodes: a node that was offline when a directive (or its rollback) went out gets it from
 * its peers over /loam/directives-sync/1 when it comes back, through chains of nodes, and never
 * past the directive's TTL.
 * @module
 */
import assert from "node:assert/strict";
import { generateKeyPair } from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { type AgentProcess, runLoam, spawnLoam, startAgent, tempDir } from "./harness.ts";
import { eventually, metric, peerIdOf } from "./mesh_helpers.ts";
import { sha256Hex, startBlobServer } from "../fixtures/blob_server.ts";
import { startTestPeer } from "../fixtures/mesh_peer.ts";
import { testDirective } from "../fixtures/directive.ts";
import { sealEnvelope } from "../../src/protocol/envelope.ts";
import type { DeploymentDirective } from "../../src/protocol/directive.ts";
import type { RollbackOrder } from "../../src/protocol/rollback.ts";
import { DIRECTIVES_SYNC_PROTOCOL } from "../../src/mesh/directives_sync.ts";
import { STATUS_QUERY_PROTOCOL } from "../../src/mesh/status_query.ts";
import { sleep } from "../../src/system/sleep.ts";

const SERVICE = new TextEncoder().encode(
  "#!/bin/sh\ni=0\nwhile [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done\n",
);

interface Record {
  directive_id: string;
  state: string;
  source: string;
  history: { state: string }[];
}

async function recordOf(agent: AgentProcess, id: string): Promise<Record | undefined> {
  const res = await agent.request(`/v1/deployments/${id}`, { token: agent.adminToken() });
  if (res.status === 404) {
    await res.body?.cancel();
    return undefined;
  }
  return await res.json();
}

const stateOf = async (agent: AgentProcess, id: string) => (await recordOf(agent, id))?.state;

/** Waits until `agent` finished an exchange of directives with a peer (either side). */
async function synced(agent: AgentProcess, what: string): Promise<void> {
  await eventually(
    what,
    async () =>
      await metric(agent, 'loam_directives_sync_exchanges_total{side="opened"}') +
          await metric(agent, 'loam_directives_sync_exchanges_total{side="answered"}') > 0,
  );
}

/** The looping service as a broadcast directive of `issuer`, downloaded from `url`. */
function serviceDirective(id: string, issuer: string, url: string): DeploymentDirective {
  return testDirective(id, { type: "native_binary", arch: Deno.build.arch, args: [] }, {
    issuer_node_id: issuer,
    artifact: {
      blob_hash: `sha256:${sha256Hex(SERVICE)}`,
      size_bytes: SERVICE.length,
      urls: [url],
    },
    options: { timeout_seconds: 60 },
  });
}

Deno.test("late nodes: a node that joins after the deployment ends active, through a relay chain; --watch and --watch-only show them", async () => {
  await using dir = await tempDir();
  const key = `${dir.path}/c2.key`;
  const c2 = JSON.parse((await runLoam(["keys", "generate", "--out", key, "--json"])).stdout)
    .peer_id;
  await using http = startBlobServer({ "/svc": { body: SERVICE } });
  const trust = ["--set", `mesh.trusted_issuers=${c2}`, "--set", "mesh.advert_interval=1"];
  const a = await startAgent(`${dir.path}/a`, ["--node-id", "a", ...trust]);
  const agents = [a];
  try {
    const watch = spawnLoam([
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
      "late-svc",
      "--watch",
      "--expect",
      "2",
      "--quiet-seconds",
      "1",
      "--timeout",
      "90",
    ]);
    await eventually("a active", async () => await stateOf(a, "late-svc") === "active");
    // b was not there when the directive went out
    const b = await startAgent(`${dir.path}/b`, [
      "--node-id",
      "b",
      "--bootstrap",
      a.meshAddrs[0]!,
      ...trust,
    ]);
    agents.push(b);
    await eventually("b active", async () => await stateOf(b, "late-svc") === "active", 60_000);
    const record = (await recordOf(b, "late-svc"))!;
    assert.equal(record.source, "mesh");
    assert.ok(
      await metric(b, 'loam_directives_sync_envelopes_total{outcome="received"}') >= 1,
      "b got it over the sync protocol",
    );
    const out = await watch.output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    assert.match(stdout, new RegExp(`^b\\s+${peerIdOf(b).slice(-8)}\\s+active\\s+100%$`, "m"));
    assert.match(stderr, /2 of 2 nodes active/);
    assert.match(stderr, /loam deploy --watch-only late-svc/);

    // c only ever meets b, and b met a: a is gone before c starts
    await a.stop();
    agents.shift();
    const c = await startAgent(`${dir.path}/c`, [
      "--node-id",
      "c",
      "--bootstrap",
      b.meshAddrs[0]!,
      ...trust,
    ]);
    agents.push(c);
    await eventually("c active", async () => await stateOf(c, "late-svc") === "active", 60_000);

    // a command post that comes back later sees the fleet's state, a's last report included
    const later = await runLoam([
      "deploy",
      "--watch-only",
      "late-svc",
      "--bootstrap",
      b.meshAddrs[0]!,
      "--listen",
      "/ip4/127.0.0.1/tcp/0",
      "--quiet-seconds",
      "1",
      "--timeout",
      "30",
    ]);
    assert.equal(later.code, 0, later.stderr);
    for (const [name, agent] of [["b", b], ["c", c]] as const) {
      assert.match(
        later.stdout,
        new RegExp(`^${name}\\s+${peerIdOf(agent).slice(-8)}\\s+active\\s+100%$`, "m"),
      );
    }
    assert.match(later.stdout, /^a\s+\w{8}\s+active\s+100%/m);
    assert.match(later.stderr, /3 of 3 nodes active/);
    assert.doesNotMatch(later.stderr, /published/, "watch-only publishes nothing");
  } finally {
    await Promise.all(agents.map((agent) => agent.stop()));
  }
});

Deno.test("late nodes: a rollback that went out while a node was away reaches it, and a node that missed both never activates the directive", async () => {
  await using dir = await tempDir();
  const issuerKey = await generateKeyPair("Ed25519");
  const issuer = peerIdFromPrivateKey(issuerKey).toString();
  await using http = startBlobServer({ "/svc": { body: SERVICE } });
  const trust = ["--set", `mesh.trusted_issuers=${issuer}`, "--set", "mesh.advert_interval=1"];
  const a = await startAgent(`${dir.path}/a`, ["--node-id", "a", ...trust]);
  let b = await startAgent(`${dir.path}/b`, [
    "--node-id",
    "b",
    "--bootstrap",
    a.meshAddrs[0]!,
    ...trust,
  ]);
  const agents = [a, b];
  try {
    await using c2 = await startTestPeer({ dial: a.meshAddrs[0]!, privateKey: issuerKey });
    const directive = serviceDirective("undone", issuer, http.url("/svc"));
    await c2.publish(
      c2.topics.directives,
      await sealEnvelope("directive", directive, issuerKey, issuer),
    );
    for (const agent of [a, b]) {
      await eventually("active", async () => await stateOf(agent, "undone") === "active", 30_000);
    }
    // b is cut off while the rollback goes out
    await b.stop();
    agents.pop();
    const order: RollbackOrder = {
      rollback_id: "rollback-undone",
      directive_id: "undone",
      issued_at: new Date().toISOString(),
      issuer_node_id: issuer,
      reason: "bad build",
    };
    await c2.publish(
      c2.topics.directives,
      await sealEnvelope("rollback", order, issuerKey, issuer),
    );
    await eventually("a rolled back", async () => await stateOf(a, "undone") === "rolled_back");
    await c2.close();

    b = await startAgent(`${dir.path}/b`, [
      "--node-id",
      "b",
      "--bootstrap",
      a.meshAddrs[0]!,
      ...trust,
    ]);
    agents.push(b);
    await eventually(
      "b rolled back",
      async () => await stateOf(b, "undone") === "rolled_back",
      30_000,
    );
    assert.match((await recordOf(b, "undone"))!.history.at(-1)!.state, /rolled_back/);

    // c missed the directive and its rollback: it gets the rollback alone, and never starts it
    const c = await startAgent(`${dir.path}/c`, [
      "--node-id",
      "c",
      "--bootstrap",
      a.meshAddrs[0]!,
      ...trust,
    ]);
    agents.push(c);
    await synced(c, "c exchanged directives with a peer");
    await eventually(
      "c took the rollback",
      async () => await metric(c, 'loam_directives_sync_envelopes_total{outcome="received"}') >= 1,
    );
    await sleep(2000);
    assert.equal(await recordOf(c, "undone"), undefined, "c never took the rolled-back directive");
    assert.equal(
      await metric(a, 'loam_directives_sync_envelopes_total{outcome="sent"}') >= 1,
      true,
    );
  } finally {
    await Promise.all(agents.map((agent) => agent.stop()));
  }
});

Deno.test("late nodes: a directive past its TTL is not handed over, nor one posted to the local API; a forged one is refused", async () => {
  await using dir = await tempDir();
  const issuerKey = await generateKeyPair("Ed25519");
  const issuer = peerIdFromPrivateKey(issuerKey).toString();
  await using http = startBlobServer({ "/svc": { body: SERVICE } });
  const trust = ["--set", `mesh.trusted_issuers=${issuer}`];
  // 0.002 h = 7.2 s in force
  const a = await startAgent(`${dir.path}/a`, [
    "--node-id",
    "a",
    "--set",
    "deploy.directive_ttl_hours=0.002",
    ...trust,
  ]);
  const agents = [a];
  try {
    await using c2 = await startTestPeer({ dial: a.meshAddrs[0]!, privateKey: issuerKey });
    const directive = serviceDirective("short-lived", issuer, http.url("/svc"));
    await c2.publish(
      c2.topics.directives,
      await sealEnvelope("directive", directive, issuerKey, issuer),
    );
    await eventually("a active", async () => await stateOf(a, "short-lived") === "active");
    await c2.close();
    // posted to a's own API: unsigned, so never handed to anyone
    const { issuer_node_id: _, ...local } = serviceDirective(
      "local-only",
      issuer,
      http.url("/svc"),
    );
    const posted = await a.request("/v1/deployments", {
      method: "POST",
      token: a.adminToken(),
      body: JSON.stringify(local),
    });
    assert.equal(posted.status, 202, await posted.text());
    await eventually("local-only active", async () => await stateOf(a, "local-only") === "active");
    const expiresAt = Date.parse(directive.issued_at) + 0.002 * 3600_000;
    await sleep(Math.max(0, expiresAt - Date.now() + 500));
    // b keeps directives for a week: only a's TTL can keep it from b
    const b = await startAgent(`${dir.path}/b`, [
      "--node-id",
      "b",
      "--bootstrap",
      a.meshAddrs[0]!,
      ...trust,
    ]);
    agents.push(b);
    await synced(b, "b exchanged directives with a");
    await sleep(1000);
    assert.equal(await recordOf(b, "short-lived"), undefined);
    assert.equal(await recordOf(b, "local-only"), undefined, "an API directive is never relayed");
    assert.equal(await metric(a, 'loam_directives_sync_envelopes_total{outcome="sent"}'), 0);
    assert.equal(
      await stateOf(a, "short-lived"),
      "active",
      "expiry does not undo an active deployment",
    );

    // a member relays a forged directive and one signed by a key a does not trust
    const rogue = await generateKeyPair("Ed25519");
    const rogueId = peerIdFromPrivateKey(rogue).toString();
    const forged = JSON.parse(
      new TextDecoder().decode(
        await sealEnvelope(
          "directive",
          serviceDirective("forged", issuer, http.url("/svc")),
          rogue,
          rogueId,
        ),
      ),
    );
    forged.signer = issuer; // claims the trusted issuer; the signature is the rogue's
    const pack = (value: unknown) =>
      btoa(typeof value === "string" ? value : JSON.stringify(value));
    const untrusted = new TextDecoder().decode(
      await sealEnvelope(
        "directive",
        serviceDirective("untrusted", rogueId, http.url("/svc")),
        rogue,
        rogueId,
      ),
    );
    await using member = await startTestPeer({ dial: a.meshAddrs[0]! });
    const [answer] = await member.converse(DIRECTIVES_SYNC_PROTOCOL, [
      { send: { have: { directives: [], rollbacks: [] } } },
      { receive: true },
      { send: { envelopes: [pack(forged), pack(untrusted), "bm90IGFuIGVudmVsb3Bl"] } },
    ]);
    assert.deepEqual(answer, {
      envelopes: [],
      more: false,
      want: { directives: [], rollbacks: [] },
    });
    await eventually(
      "a rejects all three",
      async () => await metric(a, 'loam_directives_sync_envelopes_total{outcome="rejected"}') === 3,
    );
    for (const id of ["forged", "untrusted"]) assert.equal(await recordOf(a, id), undefined);
    // a malformed id list ends the exchange, and the peer is told which field was wrong
    const [refused] = await member.converse(DIRECTIVES_SYNC_PROTOCOL, [
      { send: { have: { directives: ["../../etc/passwd"], rollbacks: [] } } },
      { receive: true },
    ]);
    assert.match(
      (refused as { error: { message: string } }).error.message,
      /^have\.directives\.0: /,
    );
    // the same on the status protocol: the query is refused naming its bad field
    const [noId] = await member.converse(STATUS_QUERY_PROTOCOL, [
      { send: { directive_id: 7 } },
      { receive: true },
    ]);
    assert.match((noId as { error: { message: string } }).error.message, /^directive_id: /);
  } finally {
    await Promise.all(agents.map((agent) => agent.stop()));
  }
});
