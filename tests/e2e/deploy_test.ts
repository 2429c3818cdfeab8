import assert from "node:assert/strict";
import { generateKeyPair } from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { type AgentProcess, startAgent, tempDir } from "./harness.ts";
import { eventually, metric } from "./mesh_helpers.ts";
import { randomBytes, sha256Hex, startBlobServer } from "../fixtures/blob_server.ts";
import { startTestPeer } from "../fixtures/mesh_peer.ts";
import { sealEnvelope } from "../../src/protocol/envelope.ts";
import { DeploymentDirectiveSchema } from "../../src/protocol/directive.ts";

const BODY = randomBytes(2 * 1024 * 1024);
const HEX = sha256Hex(BODY);

function directive(
  id: string,
  url: string,
  extra: Record<string, unknown> = {},
  artifact: Record<string, unknown> = {},
) {
  return {
    directive_id: id,
    scope: { type: "broadcast" },
    artifact: {
      blob_hash: `sha256:${HEX}`,
      size_bytes: BODY.length,
      name: "vad",
      urls: [url],
      artifact_type: { type: "onnx_model", execution_providers: ["cpu"] },
      ...artifact,
    },
    ...extra,
  };
}

async function post(agent: AgentProcess, body: unknown) {
  const res = await agent.request("/v1/deployments", {
    method: "POST",
    token: agent.adminToken(),
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

async function record(agent: AgentProcess, id: string) {
  const res = await agent.request(`/v1/deployments/${id}`, { token: agent.adminToken() });
  return res.status === 200 ? await res.json() : undefined;
}

async function finalState(agent: AgentProcess, id: string) {
  return await eventually(`deployment ${id} final`, async () => {
    const r = await record(agent, id);
    return r && ["active", "failed", "rolled_back"].includes(r.state) ? r : undefined;
  });
}

Deno.test("a posted directive downloads and verifies its artifact, then fails clearly when its runtime refuses it", async () => {
  await using dir = await tempDir();
  await using http = startBlobServer({ "/vad.onnx": { body: BODY } });
  const agent = await startAgent(dir.path);
  try {
    const accepted = await post(agent, directive("dep-1", http.url("/vad.onnx")));
    assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
    assert.equal(accepted.body.state, "pending");
    assert.equal(accepted.body.directive.issuer_node_id, "local-api");
    const done = await finalState(agent, "dep-1");
    assert.equal(done.state, "failed");
    assert.match(done.error_message, /ONNX model did not load: .*Protobuf parsing failed/);
    assert.deepEqual(done.history.map((h: { state: string }) => h.state), [
      "pending",
      "downloading",
      "activating",
      "failed",
    ]);
    assert.equal(done.progress_percent, 100);
    const stored = JSON.parse(await Deno.readTextFile(`${dir.path}/deployments/dep-1.json`));
    assert.equal(stored.state, "failed");
    const blobs = await (await agent.request("/v1/blobs", { token: agent.adminToken() })).json();
    assert.deepEqual(
      blobs.blobs.map((
        b: { sha256: string; referenced_by: string[] },
      ) => [b.sha256, b.referenced_by]),
      [[HEX, ["dep-1"]]],
    );
    const list = await (await agent.request("/v1/deployments", { token: agent.adminToken() }))
      .json();
    assert.deepEqual(list.deployments.map((d: { directive_id: string }) => d.directive_id), [
      "dep-1",
    ]);
  } finally {
    await agent.stop();
  }
});

Deno.test("intake: replay, expiry, targeting, requirements and bad bodies", async () => {
  await using dir = await tempDir();
  await using http = startBlobServer({ "/vad.onnx": { body: BODY } });
  const quick = [
    "--node-id",
    "edge-1",
    "--set",
    "fetch.retries=1",
    "--set",
    "fetch.backoff_initial_ms=50",
  ];
  const agent = await startAgent(dir.path, quick);
  const url = http.url("/vad.onnx");
  try {
    assert.equal((await post(agent, directive("d-a", url))).status, 202);
    const replay = await post(agent, directive("d-a", url));
    assert.equal(replay.status, 409);
    assert.equal(replay.body.error.code, "replay");
    const expired = await post(
      agent,
      directive("d-b", url, { expires_at: "2020-01-01T00:00:00Z" }),
    );
    assert.equal(expired.status, 400);
    assert.equal(expired.body.error.code, "expired");
    const other = await post(
      agent,
      directive("d-c", url, { scope: { type: "nodes", node_ids: ["edge-2"] } }),
    );
    assert.equal(other.status, 200);
    assert.deepEqual(other.body, {
      directive_id: "d-c",
      targeted: false,
      reason: "node list does not name edge-1",
    });
    const big = await post(
      agent,
      directive("d-d", url, {}, { requirements: { min_ram_mb: 10_000_000 } }),
    );
    assert.equal(big.status, 202);
    assert.equal(big.body.state, "failed");
    assert.match(big.body.error_message, /^needs 10000000 MB RAM, has \d+$/);
    const bad = await post(agent, { directive_id: "../etc", scope: { type: "broadcast" } });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /^directive_id: expected 1-128 letters/);
    const wrong = await post(
      agent,
      directive("d-e", url, {}, { blob_hash: `sha256:${"0".repeat(64)}` }),
    );
    assert.equal(wrong.status, 202);
    const failed = await finalState(agent, "d-e");
    assert.match(failed.error_message, /hash mismatch: expected sha256:0{64}, got sha256:/);
    assert.deepEqual(failed.history.map((h: { state: string }) => h.state), [
      "pending",
      "downloading",
      "failed",
    ]);
  } finally {
    await agent.stop();
  }
  // replay protection survives a restart
  const again = await startAgent(dir.path, quick);
  try {
    assert.equal((await post(again, directive("d-c", url))).status, 409);
  } finally {
    await again.stop();
  }
});

Deno.test("a deployment interrupted by kill -9 mid-download resumes on boot", async () => {
  await using dir = await tempDir();
  await using http = startBlobServer({
    "/slow": { body: BODY, bytesPerSecond: 1024 * 1024, etag: '"v"' },
  });
  const agent = await startAgent(dir.path);
  assert.equal((await post(agent, directive("dep-slow", http.url("/slow")))).status, 202);
  await eventually(
    "half the blob on disk",
    async () => (await Deno.stat(`${dir.path}/blobs/partial/${HEX}`)).size > 512 * 1024,
  );
  await agent.stop("SIGKILL");
  assert.equal(
    JSON.parse(await Deno.readTextFile(`${dir.path}/deployments/dep-slow.json`)).state,
    "downloading",
  );
  http.routes["/slow"]!.bytesPerSecond = undefined;
  const restarted = await startAgent(dir.path);
  try {
    assert.ok(
      restarted.logs.some((l) => l.msg === "resuming deployment" && l.directive_id === "dep-slow"),
    );
    const done = await finalState(restarted, "dep-slow");
    assert.match(done.error_message, /ONNX model did not load/);
    assert.equal(http.requests.at(-1)!.status, 206, "the download resumed with a range request");
  } finally {
    await restarted.stop();
  }
});

Deno.test("directives over the mesh: only trusted issuers, only the targeted formation, status flows back", async () => {
  await using dir = await tempDir();
  await using http = startBlobServer({ "/vad.onnx": { body: BODY } });
  const c2Key = await generateKeyPair("Ed25519");
  const c2 = peerIdFromPrivateKey(c2Key).toString();
  const common = ["--set", `mesh.trusted_issuers=${c2}`, "--set", "mesh.advert_interval=1"];
  const north = await startAgent(`${dir.path}/north`, ["--formation-id", "north", ...common]);
  const south = await startAgent(`${dir.path}/south`, [
    "--formation-id",
    "south",
    "--bootstrap",
    north.meshAddrs[0]!,
    ...common,
  ]);
  try {
    await using issuer = await startTestPeer({ dial: north.meshAddrs[0]!, privateKey: c2Key });
    await eventually(
      "south subscribed",
      async () => (await metric(south, 'loam_mesh_messages_accepted_total{kind="advert"}')) > 0,
    );
    const d = DeploymentDirectiveSchema.parse({
      ...directive("mesh-1", http.url("/vad.onnx")),
      scope: { type: "formation", formation_id: "north" },
      issued_at: new Date().toISOString(),
      issuer_node_id: "c2",
    });
    await issuer.publish(issuer.topics.directives, await sealEnvelope("directive", d, c2Key, c2));
    const done = await finalState(north, "mesh-1");
    assert.equal(done.source, "mesh");
    assert.match(done.error_message, /ONNX model did not load/);
    assert.equal(await record(south, "mesh-1"), undefined, "south is not in formation north");
    assert.ok(
      south.logs.some((l) =>
        l.msg === "directive not for this node" && l.directive_id === "mesh-1"
      ),
    );
    await eventually(
      "north's status reports reach south",
      async () => (await metric(south, 'loam_mesh_messages_accepted_total{kind="status"}')) >= 4,
    );
  } finally {
    await Promise.all([north.stop(), south.stop()]);
  }
});

Deno.test("an unreadable deployment record is set aside, and the node still starts", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/deployments`, { recursive: true });
  await Deno.writeTextFile(`${dir.path}/deployments/broken.json`, "{ not json");
  const agent = await startAgent(dir.path);
  try {
    const logged = agent.logs.find((l) => l.msg === "deployment record skipped");
    assert.match(
      String(logged?.problem),
      /broken\.json is unreadable .* moved to .*broken\.json\.unreadable/,
    );
    assert.ok(await Deno.stat(`${dir.path}/deployments/broken.json.unreadable`));
    const list = await (await agent.request("/v1/deployments", { token: agent.adminToken() }))
      .json();
    assert.deepEqual(list.deployments, []);
  } finally {
    await agent.stop();
  }
});

Deno.test("an observer that joins late receives the current deployment statuses", async () => {
  await using dir = await tempDir();
  await using http = startBlobServer({ "/vad.onnx": { body: BODY } });
  const a = await startAgent(`${dir.path}/a`);
  try {
    assert.equal((await post(a, directive("early-1", http.url("/vad.onnx")))).status, 202);
    await finalState(a, "early-1");
    const observer = await startAgent(`${dir.path}/b`, ["--bootstrap", a.meshAddrs[0]!]);
    try {
      await eventually(
        "the status reaches the late observer",
        async () =>
          (await metric(observer, 'loam_mesh_messages_accepted_total{kind="status"}')) >= 1,
      );
    } finally {
      await observer.stop();
    }
  } finally {
    await a.stop();
  }
});
