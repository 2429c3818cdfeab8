import assert from "node:assert/strict";
import { runLoam, startAgent, tempDir } from "./harness.ts";
import { eventually, metric } from "./mesh_helpers.ts";
import { postArtifact, settledDeployment } from "./deploy_helpers.ts";
import { startTestPeer } from "../fixtures/mesh_peer.ts";
import { startBlobServer } from "../fixtures/blob_server.ts";
import { tarGz } from "../fixtures/tarball.ts";

const FLOOD = 10_000;

Deno.test("a member flooding gossip is throttled and counted; the node keeps deploying and answering", async () => {
  await using dir = await tempDir();
  const key = `${dir.path}/fleet.key`;
  assert.equal((await runLoam(["keys", "fleet", "--out", key])).code, 0);
  const victim = await startAgent(`${dir.path}/victim`, [
    "--fleet-key",
    key,
    "--set",
    "mesh.mdns=false",
    "--set",
    "mesh.limits.gossip_per_second=50",
  ]);
  try {
    await using flooder = await startTestPeer({
      dial: victim.meshAddrs[0]!,
      fleetKey: await Deno.readFile(key),
    });
    const junk = new TextEncoder().encode("not an envelope");
    const flood = (async () => {
      for (let i = 0; i < FLOOD; i++) await flooder.publish(flooder.topics.status, junk);
    })();
    // meanwhile the victim answers and deploys
    const config = await tarGz([{ name: "app.conf", content: "v=1\n" }]);
    await using http = startBlobServer({ "/config.tgz": { body: config } });
    const status = await victim.request("/v1/status", { token: victim.adminToken() });
    assert.equal(status.status, 200);
    await status.body?.cancel();
    await postArtifact(victim, "cfg", config, http.url("/config.tgz"), {
      type: "config_package",
      target_path: `${dir.path}/etc/app`,
    });
    assert.equal((await settledDeployment(victim, "cfg")).state, "active");
    await flood;
    const limited = await eventually("most of the flood is rate-limited", async () => {
      const n = await metric(victim, 'loam_mesh_messages_dropped_total{reason="rate_limited"}');
      return n >= FLOOD / 2 ? n : undefined;
    });
    // the ten seconds' burst and the rate are let through to the validator, which rejects junk
    const checked = await metric(victim, 'loam_mesh_messages_dropped_total{reason="not_json"}');
    assert.ok(checked <= 50 * 10 + 50 * 30, `validated ${checked} of the flood`);
    assert.ok(limited + checked <= FLOOD, `${limited} + ${checked}`);
    console.log(`  flood of ${FLOOD}: ${limited} rate-limited unread, ${checked} validated`);
  } finally {
    await victim.stop();
  }
});

Deno.test("past mesh.limits.connections_per_ip, connections from one address are refused and counted", async () => {
  await using dir = await tempDir();
  const agent = await startAgent(`${dir.path}/a`, ["--set", "mesh.limits.connections_per_ip=2"]);
  try {
    await using first = await startTestPeer({ dial: agent.meshAddrs[0]! });
    await using _second = await startTestPeer({ dial: agent.meshAddrs[0]! });
    await assert.rejects(startTestPeer({ dial: agent.meshAddrs[0]! }));
    assert.ok((await metric(agent, "loam_mesh_connections_refused_total")) >= 1);
    assert.ok(agent.logs.some((l) => l.msg.startsWith("refused a mesh connection")));
    // a closed connection frees its place
    await first.close();
    await eventually("a place is free again", async () => {
      try {
        await (await startTestPeer({ dial: agent.meshAddrs[0]! })).close();
        return true;
      } catch {
        return undefined;
      }
    });
  } finally {
    await agent.stop();
  }
});
