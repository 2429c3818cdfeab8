import assert from "node:assert/strict";
import { type AgentProcess, startAgent, tempDir } from "./harness.ts";
import { eventually, peerIdOf, peersOf } from "./mesh_helpers.ts";
import { postArtifact, settledDeployment } from "./deploy_helpers.ts";
import { sha256Hex, startBlobServer } from "../fixtures/blob_server.ts";

const encode = (text: string) => new TextEncoder().encode(text);

/** A service that says hello, then beats a heartbeat file in its instance dir (for 60 s at most). */
const SERVICE = encode(`#!/bin/sh
echo "started $LOAM_INSTANCE_ID with $1"
echo "warming up" >&2
i=0
while [ $i -lt 600 ]; do date +%s%N > heartbeat; sleep 0.1; i=$((i + 1)); done
`);
const CRASHER = encode("#!/bin/sh\necho crashing\nsleep 1.2\nexit 3\n");
const FAILS_AT_ONCE = encode("#!/bin/sh\necho 'missing config file' >&2\nexit 7\n");

async function deploy(
  agent: AgentProcess,
  url: string,
  body: Uint8Array,
  id: string,
  arch: string = Deno.build.arch,
  extra: Record<string, unknown> = {},
) {
  const res = await postArtifact(agent, id, body, url, {
    type: "native_binary",
    arch,
    args: ["--port=9"],
  }, extra);
  assert.equal(res.status, 202, await res.text());
}

async function heartbeat(dataDir: string, instance: string): Promise<string> {
  return await Deno.readTextFile(`${dataDir}/instances/${instance}/heartbeat`).catch(() => "");
}

Deno.test("a native binary runs supervised: instance record, logs, and DELETE stops it", async () => {
  await using dir = await tempDir();
  await using http = startBlobServer({ "/svc": { body: SERVICE } });
  const agent = await startAgent(dir.path);
  try {
    await deploy(agent, http.url("/svc"), SERVICE, "nb-1");
    const record = await settledDeployment(agent, "nb-1");
    assert.equal(record.state, "active", record.error_message);
    assert.equal(record.instance_id, "bin-nb-1");
    const instances =
      (await (await agent.request("/v1/instances", { token: agent.adminToken() })).json())
        .instances;
    assert.equal(instances.length, 1);
    assert.equal(instances[0].adapter, "native_binary");
    assert.equal(instances[0].state, "running");
    assert.ok(instances[0].pid > 0);
    const logs = await eventually("output captured", async () => {
      const res = await agent.request("/v1/instances/bin-nb-1/logs", { token: agent.adminToken() });
      const body = await res.json();
      return body.lines.length >= 2 ? body.lines : undefined;
    });
    assert.ok(
      logs.some((l: { stream: string; line: string }) =>
        l.stream === "stdout" && l.line === "started bin-nb-1 with --port=9"
      ),
    );
    assert.ok(
      logs.some((l: { stream: string; line: string }) =>
        l.stream === "stderr" && l.line === "warming up"
      ),
    );
    assert.ok(agent.logs.some((l) => l.msg === "instance output" && l.instance_id === "bin-nb-1"));

    const res = await agent.request("/v1/deployments/nb-1", {
      method: "DELETE",
      token: agent.adminToken(),
    });
    assert.equal((await res.json()).state, "rolled_back");
    const missing = await agent.request("/v1/instances/bin-nb-1", { token: agent.adminToken() });
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    await assert.rejects(Deno.stat(`${dir.path}/instances/bin-nb-1`), Deno.errors.NotFound);
  } finally {
    await agent.stop();
  }
});

Deno.test("a deployment's blob and instance reach peers' view by advert within seconds, and leave", async () => {
  await using dir = await tempDir();
  await using http = startBlobServer({ "/svc": { body: SERVICE } });
  // the periodic advert is an hour away: only the change-triggered ones can tell
  const slow = ["--set", "mesh.advert_interval=3600"];
  const watcher = await startAgent(`${dir.path}/watcher`, slow);
  const worker = await startAgent(`${dir.path}/worker`, [
    "--bootstrap",
    watcher.meshAddrs[0]!,
    ...slow,
  ]);
  try {
    const seen = async () =>
      (await peersOf(watcher)).find((p) => p.peer_id === peerIdOf(worker))?.advert;
    await eventually("the worker's first advert", async () => (await seen()) ?? undefined, 20_000);
    await deploy(worker, http.url("/svc"), SERVICE, "nb-advert");
    assert.equal((await settledDeployment(worker, "nb-advert")).state, "active");
    await eventually(
      "an advert with the blob and the instance",
      async () => {
        const advert = await seen();
        return advert?.blobs === 1 && advert.instances === 1;
      },
      10_000,
    );
    const res = await worker.request("/v1/deployments/nb-advert", {
      method: "DELETE",
      token: worker.adminToken(),
    });
    assert.equal((await res.json()).state, "rolled_back");
    await eventually("an advert without the instance", async () => {
      return (await seen())?.instances === 0;
    }, 10_000);
  } finally {
    await Promise.all([worker.stop(), watcher.stop()]);
  }
});

Deno.test("native binaries: wrong arch, immediate exit and crash loops fail with the reason", async () => {
  await using dir = await tempDir();
  await using http = startBlobServer({
    "/svc": { body: SERVICE },
    "/crash": { body: CRASHER },
    "/fail": { body: FAILS_AT_ONCE },
  });
  const agent = await startAgent(dir.path);
  try {
    await deploy(agent, http.url("/svc"), SERVICE, "nb-arch", "riscv64");
    assert.match(
      (await settledDeployment(agent, "nb-arch")).error_message,
      /^built for riscv64, this node is /,
    );
    await deploy(agent, http.url("/fail"), FAILS_AT_ONCE, "nb-fail");
    assert.equal(
      (await settledDeployment(agent, "nb-fail")).error_message,
      "exited with code 7 right after start: missing config file",
    );
    await deploy(agent, http.url("/crash"), CRASHER, "nb-crash");
    assert.equal((await settledDeployment(agent, "nb-crash")).state, "active");
    const broken = await settledDeployment(agent, "nb-crash", ["failed"]);
    assert.match(broken.error_message, /^crashed 3 times within 60 s \(last exit code 3\)$/);
  } finally {
    await agent.stop();
  }
});

Deno.test("after kill -9 and restart the agent runs its active binaries again (once)", async () => {
  await using dir = await tempDir();
  await using http = startBlobServer({ "/svc": { body: SERVICE } });
  const agent = await startAgent(dir.path);
  await deploy(agent, http.url("/svc"), SERVICE, "nb-boot");
  assert.equal((await settledDeployment(agent, "nb-boot")).state, "active");
  await agent.stop("SIGKILL");
  const restarted = await startAgent(dir.path);
  try {
    assert.ok(
      restarted.logs.some((l) =>
        l.msg === "deployment re-activated" && l.directive_id === "nb-boot"
      ),
    );
    const instances =
      (await (await restarted.request("/v1/instances", { token: restarted.adminToken() })).json())
        .instances;
    assert.equal(instances.length, 1);
    assert.ok(
      restarted.logs.some((l) =>
        l.msg === "killing the instance left running by the previous agent"
      ),
    );
    const before = await heartbeat(dir.path, "bin-nb-boot");
    await eventually(
      "heartbeat moves",
      async () => (await heartbeat(dir.path, "bin-nb-boot")) !== before,
    );
  } finally {
    await restarted.stop();
  }
  // a graceful stop stops the program too
  const last = await heartbeat(dir.path, "bin-nb-boot");
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await heartbeat(dir.path, "bin-nb-boot"), last, "no process left behind");
});

Deno.test("replace_existing: the new version runs before the old stops; a failing one leaves the old running", async () => {
  await using dir = await tempDir();
  await using http = startBlobServer({
    "/svc": { body: SERVICE },
    "/fail": { body: FAILS_AT_ONCE },
  });
  const agent = await startAgent(dir.path);
  const provides = { capabilities: ["heartbeat-service"] };
  const replacing = { ...provides, options: { replace_existing: true } };
  try {
    await deploy(agent, http.url("/svc"), SERVICE, "v1", Deno.build.arch, provides);
    assert.equal((await settledDeployment(agent, "v1")).state, "active");
    // the same program under another directive id: a new instance, then v1 is retired
    await deploy(agent, http.url("/svc"), SERVICE, "v2", Deno.build.arch, replacing);
    assert.equal((await settledDeployment(agent, "v2")).state, "active");
    const v1 = await settledDeployment(agent, "v1", ["rolled_back"]);
    assert.equal(v1.error_message, "replaced by v2");
    const ids = (await (await agent.request("/v1/instances", { token: agent.adminToken() })).json())
      .instances.map((i: { instance_id: string }) => i.instance_id);
    assert.deepEqual(ids, ["bin-v2"]);

    await deploy(agent, http.url("/fail"), FAILS_AT_ONCE, "v3", Deno.build.arch, replacing);
    const v3 = await settledDeployment(agent, "v3", ["rolled_back", "failed"]);
    assert.equal(v3.state, "rolled_back");
    assert.match(
      v3.error_message,
      /^activation failed \(exited with code 7 right after start: missing config file\); v2 keeps running$/,
    );
    assert.equal((await settledDeployment(agent, "v2")).state, "active");
    const before = await heartbeat(dir.path, "bin-v2");
    await eventually(
      "v2 still beats",
      async () => (await heartbeat(dir.path, "bin-v2")) !== before,
    );
  } finally {
    await agent.stop();
  }
});

/** Tries to read the agent's secrets and environment from inside a workload. */
const SNOOP = encode(`#!/bin/sh
echo "uid=$(id -u)"
cat "$1/identity.key" >/dev/null 2>&1 && echo "identity: READ" || echo "identity: denied"
cat "$1/api/admin.token" >/dev/null 2>&1 && echo "token: READ" || echo "token: denied"
ls "$1" >/dev/null 2>&1 && echo "data dir: LISTED" || echo "data dir: not listable"
echo "env: $(env | cut -d= -f1 | sort | tr '\\n' ' ')"
sleep 30
`);

Deno.test("a native workload runs unprivileged with a clean env: the agent's key and tokens are out of reach", async () => {
  if (Deno.uid() !== 0) {
    console.warn("SKIP: the agent drops workloads to workloads.user only when it runs as root");
    return;
  }
  await using dir = await tempDir();
  await using http = startBlobServer({ "/snoop": { body: SNOOP } });
  const agent = await startAgent(dir.path, [], { env: { SECRET_OF_THE_AGENT: "hunter2" } });
  try {
    const res = await agent.request("/v1/deployments", {
      method: "POST",
      token: agent.adminToken(),
      body: JSON.stringify({
        directive_id: "snoop",
        scope: { type: "broadcast" },
        artifact: {
          blob_hash: `sha256:${sha256Hex(SNOOP)}`,
          size_bytes: SNOOP.length,
          urls: [http.url("/snoop")],
          artifact_type: { type: "native_binary", arch: Deno.build.arch, args: [dir.path] },
        },
      }),
    });
    assert.equal(res.status, 202);
    const record = await settledDeployment(agent, "snoop");
    assert.equal(record.state, "active", record.error_message);
    const lines = await eventually("the workload reported", async () => {
      const body = await (await agent.request("/v1/instances/bin-snoop/logs", {
        token: agent.adminToken(),
      })).json();
      const text = body.lines.map((l: { line: string }) => l.line);
      return text.some((l: string) => l.startsWith("env:")) ? text : undefined;
    });
    assert.ok(lines.includes("uid=65534"), lines.join("\n"));
    assert.ok(lines.includes("identity: denied"), lines.join("\n"));
    assert.ok(lines.includes("token: denied"), lines.join("\n"));
    assert.ok(lines.includes("data dir: not listable"), lines.join("\n"));
    const env = lines.find((l: string) => l.startsWith("env:"))!;
    assert.doesNotMatch(env, /SECRET_OF_THE_AGENT/);
    assert.deepEqual(
      env.slice(5).trim().split(" ").filter((n: string) => !["PWD", "SHLVL", "_"].includes(n)),
      [
        "HOME",
        "LOAM_INSTANCE_ID",
        "PATH",
      ],
    );
  } finally {
    await agent.stop();
  }
});
