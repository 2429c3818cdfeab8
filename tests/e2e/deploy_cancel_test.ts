import assert from "node:assert/strict";
import { type AgentProcess, startAgent, tempDir } from "./harness.ts";
import { postArtifact, settledDeployment } from "./deploy_helpers.ts";
import { eventually } from "./mesh_helpers.ts";
import { randomBytes, sha256Hex, startBlobServer } from "../fixtures/blob_server.ts";
import { startTestPeer } from "../fixtures/mesh_peer.ts";
import { sleep } from "../../src/system/sleep.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

async function del(agent: AgentProcess, id: string): Promise<{ status: number; body: Json }> {
  const res = await agent.request(`/v1/deployments/${id}`, {
    method: "DELETE",
    token: agent.adminToken(),
  });
  return { status: res.status, body: await res.json() };
}

async function recordOf(agent: AgentProcess, id: string): Promise<Json> {
  const res = await agent.request(`/v1/deployments/${id}`, { token: agent.adminToken() });
  return res.status === 200 ? await res.json() : (await res.body?.cancel(), undefined);
}

/** Waits until the deployment is in `state` (polling fast: some states last about a second). */
async function reaches(agent: AgentProcess, id: string, state: string): Promise<Json> {
  return await eventually(`${id} ${state}`, async () => {
    const record = await recordOf(agent, id);
    if (
      record && ["failed", "rolled_back", "active"].includes(record.state) && state !== record.state
    ) {
      throw new Error(`${id} ended ${record.state}: ${record.error_message}`);
    }
    return record?.state === state ? record : undefined;
  });
}

const states = (record: Json) => record.history.map((h: { state: string }) => h.state);

/** Processes whose command line names `path` (ps through sh: Deno will not list /proc). */
async function processesRunning(path: string): Promise<number[]> {
  const out = await new Deno.Command("sh", { args: ["-c", "ps -eo pid=,args="], stdout: "piped" })
    .output();
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l.includes(path))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

Deno.test("a timeout stops the download for good: failed at the timeout, stays failed, the slot is freed", async () => {
  await using dir = await tempDir();
  const slow = randomBytes(2 * 1024 * 1024);
  const small = new TextEncoder().encode("#!/bin/sh\nexec sleep 30\n");
  await using server = startBlobServer({
    "/slow": { body: slow, bytesPerSecond: 256 * 1024 }, // ~8 s
    "/small": { body: small },
  });
  const agent = await startAgent(dir.path, ["--set", "deploy.max_concurrent=1"]);
  try {
    const started = performance.now();
    const res = await postArtifact(agent, "slow-1", slow, server.url("/slow"), {
      type: "native_binary",
      arch: Deno.build.arch,
    }, { options: { timeout_seconds: 2 } });
    assert.equal(res.status, 202, await res.text());
    // queued behind it: starts only once the slow one has really stopped
    const next = await postArtifact(agent, "next-1", small, server.url("/small"), {
      type: "native_binary",
      arch: Deno.build.arch,
    });
    assert.equal(next.status, 202, await next.text());
    assert.equal((await recordOf(agent, "next-1")).state, "pending");

    const failed = await settledDeployment(agent, "slow-1", ["failed", "active"]);
    const seconds = (performance.now() - started) / 1000;
    assert.equal(failed.state, "failed");
    assert.equal(failed.error_message, "timed out after 2 s");
    assert.ok(seconds < 4.5, `failed after ${seconds.toFixed(1)} s`);
    const slowRequest = server.requests.find((r) => r.path === "/slow")!;
    await eventually(
      "the slow download's connection closed",
      () => Promise.resolve(slowRequest.endedAt !== undefined),
    );
    assert.ok(slowRequest.bytesSent < slow.length, "the download was cut, not finished");

    assert.equal((await settledDeployment(agent, "next-1")).state, "active");
    // long after the download would have ended, the timed-out deployment is still just failed
    await sleep(7000 - (performance.now() - started));
    const later = await recordOf(agent, "slow-1");
    assert.equal(later.state, "failed");
    assert.deepEqual(states(later), ["pending", "downloading", "failed"]);
    assert.equal(server.requests.filter((r) => r.path === "/slow").length, 1, "no second try");
    assert.deepEqual(
      [...Deno.readDirSync(`${dir.path}/blobs/sha256`)].map((e) => e.name),
      [sha256Hex(small)],
    );
  } finally {
    await agent.stop();
  }
});

Deno.test("DELETE works in every state and the mesh hears the outcome", async () => {
  await using dir = await tempDir();
  const slow = randomBytes(4 * 1024 * 1024);
  const script = new TextEncoder().encode("#!/bin/sh\nexec sleep 60\n");
  const config = randomBytes(1000);
  await using server = startBlobServer({
    "/slow": { body: slow, bytesPerSecond: 256 * 1024 },
    "/script": { body: script },
    "/config": { body: config },
  });
  const agent = await startAgent(dir.path, ["--set", "deploy.max_concurrent=1"]);
  await using peer = await startTestPeer({ dial: agent.meshAddrs[0]! });
  const native = { type: "native_binary", arch: Deno.build.arch };
  try {
    // downloading, with one queued behind it (pending)
    assert.equal((await postArtifact(agent, "dl", slow, server.url("/slow"), native)).status, 202);
    await reaches(agent, "dl", "downloading");
    assert.equal(
      (await postArtifact(agent, "queued", script, server.url("/script"), native)).status,
      202,
    );
    const pending = await del(agent, "queued");
    assert.equal(pending.status, 200, JSON.stringify(pending.body));
    assert.equal(pending.body.outcome, "rolled_back");
    assert.equal(pending.body.state, "rolled_back");
    assert.equal(pending.body.error_message, "cancelled while pending");

    await eventually("some bytes downloaded", async () => {
      const partials = (await (await agent.request("/v1/blobs", { token: agent.adminToken() }))
        .json()).partials;
      return partials.length === 1 && partials[0].bytes > 0;
    });
    const downloading = await del(agent, "dl");
    assert.equal(downloading.status, 200);
    assert.equal(downloading.body.state, "rolled_back");
    assert.equal(downloading.body.error_message, "cancelled while downloading");
    const partial = await Deno.stat(`${dir.path}/blobs/partial/${sha256Hex(slow)}`);
    assert.ok(partial.size > 0 && partial.size < slow.length, "the partial stays for a retry");
    const slowRequest = server.requests.find((r) => r.path === "/slow")!;
    await eventually(
      "the download's connection closed",
      () => Promise.resolve(slowRequest.endedAt !== undefined),
    );

    // ready (auto_activate false)
    const readyRes = await postArtifact(agent, "waits", config, server.url("/config"), {
      type: "config_package",
      target_path: `${dir.path}/etc/app`,
    }, { options: { auto_activate: false } });
    assert.equal(readyRes.status, 202);
    await reaches(agent, "waits", "ready");
    const ready = await del(agent, "waits");
    assert.equal(ready.body.error_message, "cancelled while ready");

    // activating: the program had started its start check; it is stopped
    assert.equal(
      (await postArtifact(agent, "starts", script, server.url("/script"), native)).status,
      202,
    );
    await reaches(agent, "starts", "activating");
    const activating = await del(agent, "starts");
    assert.equal(activating.body.state, "rolled_back");
    assert.equal(activating.body.error_message, "cancelled while activating");
    assert.deepEqual(await processesRunning(`${dir.path}/instances/bin-starts/`), []);
    const instances = (await (await agent.request("/v1/instances", { token: agent.adminToken() }))
      .json()).instances;
    assert.deepEqual(instances, []);

    // a failed record is removed, and so is a rolled-back one
    const failRes = await agent.request("/v1/deployments", {
      method: "POST",
      token: agent.adminToken(),
      body: JSON.stringify({
        directive_id: "broken",
        scope: { type: "broadcast" },
        artifact: {
          blob_hash: `sha256:${sha256Hex(script)}`,
          size_bytes: script.length,
          urls: [server.url("/script")],
          artifact_type: native,
          requirements: { min_ram_mb: 1 << 30 },
        },
      }),
    });
    assert.equal(failRes.status, 202);
    assert.equal((await settledDeployment(agent, "broken")).state, "failed");
    for (const [id, was] of [["broken", "failed"], ["queued", "rolled_back"]]) {
      const removed = await del(agent, id!);
      assert.equal(removed.status, 200);
      assert.deepEqual(removed.body, { outcome: "removed", directive_id: id, state: was });
      assert.equal(await recordOf(agent, id!), undefined);
      await assert.rejects(Deno.stat(`${dir.path}/deployments/${id}.json`), Deno.errors.NotFound);
      assert.equal((await del(agent, id!)).status, 404);
    }

    const heard = () =>
      peer.received(peer.topics.status) as {
        directive_id: string;
        state: string;
        error_message?: string;
      }[];
    await eventually("the mesh heard every cancel", () =>
      Promise.resolve(
        ["queued", "dl", "waits", "starts"].every((id) =>
          heard().some((s) => s.directive_id === id && s.state === "rolled_back")
        ) && heard().some((s) =>
          s.directive_id === "broken" && /removed/.test(s.error_message ?? "")
        ),
      ));
  } finally {
    await agent.stop();
  }
});

Deno.test("a directive nested 3,000 levels deep is refused; planted deep records are quarantined at start", async () => {
  await using dir = await tempDir();
  let agent = await startAgent(dir.path);
  try {
    const nest = (n: number) => "[".repeat(n) + "]".repeat(n);
    for (const depth of [3000, 1000]) {
      const body = `{"directive_id":"deep-${depth}","scope":{"type":"broadcast"},"artifact":{` +
        `"blob_hash":"sha256:${"a".repeat(64)}","size_bytes":1,"urls":["http://127.0.0.1:9/x"],` +
        `"artifact_type":{"type":"config_package","target_path":"/tmp/x"}},"config":${
          nest(depth)
        }}`;
      const res = await agent.request("/v1/deployments", {
        method: "POST",
        token: agent.adminToken(),
        body,
      });
      assert.equal(res.status, 400);
      const error = (await res.json()).error;
      assert.equal(error.code, "invalid_json");
      assert.match(error.message, /nests deeper than 64 levels/);
    }
    assert.deepEqual([...Deno.readDirSync(`${dir.path}/deployments`)], []);
    assert.equal((await agent.request("/livez")).status, 200);
  } finally {
    await agent.stop();
  }
  // records written by something else: too deep, and an unparseable replay list
  const deepRecord = `{"directive_id":"planted","config":${"[".repeat(5000)}${"]".repeat(5000)}}`;
  await Deno.writeTextFile(`${dir.path}/deployments/planted.json`, deepRecord);
  await Deno.writeTextFile(`${dir.path}/seen-directives.json`, "[".repeat(100_000));
  agent = await startAgent(dir.path);
  try {
    const logs = agent.logs.filter((l) => l.level === "error").map((l) => JSON.stringify(l));
    assert.match(logs.join("\n"), /planted\.json is unreadable \(JSON nests deeper than 64/);
    assert.match(logs.join("\n"), /seen-directives\.json is unreadable/);
    assert.ok(Deno.statSync(`${dir.path}/deployments/planted.json.unreadable`).isFile);
    assert.equal((await agent.request("/readyz")).status, 200);
  } finally {
    await agent.stop();
  }
});
