import assert from "node:assert/strict";
import { type AgentProcess, startAgent, tempDir } from "./harness.ts";
import { eventually, peerIdOf, peersOf } from "./mesh_helpers.ts";
import { postArtifact, settledDeployment } from "./deploy_helpers.ts";
import { sha256Hex, startBlobServer } from "../fixtures/blob_server.ts";
import { agentFlags } from "../../tasks/permissions.ts";

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

/** A 64-bit little-endian ELF header (padded to 64 bytes) for the machine `other` names. */
function foreignElf(other: string): Uint8Array {
  const header = new Uint8Array(64);
  header.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  new DataView(header.buffer).setUint16(18, other === "aarch64" ? 183 : 62, true);
  return header;
}

Deno.test("a native binary that cannot run here fails at once, saying why, before anything is installed", async () => {
  await using dir = await tempDir();
  const node = Deno.build.arch;
  const other = node === "x86_64" ? "aarch64" : "x86_64";
  const names: Record<string, string> = { x86_64: "EM_X86_64", aarch64: "EM_AARCH64" };
  const random = crypto.getRandomValues(new Uint8Array(4096));
  random[0] = 0; // neither an ELF magic nor a #!
  const elf = foreignElf(other);
  const truth = await Deno.readFile("/bin/true");
  await using http = startBlobServer({
    "/random": { body: random },
    "/elf": { body: elf },
    "/true": { body: truth },
  });
  const agent = await startAgent(dir.path);
  try {
    const cases: [id: string, path: string, body: Uint8Array, arch: string, reason: string][] = [
      ["nb-random", "/random", random, node, "not an executable: no ELF header or #! line"],
      ["nb-foreign", "/elf", elf, node, `ELF for ${other} (${names[other]}), this node is ${node}`],
      [
        "nb-mislabelled",
        "/true",
        truth,
        other,
        `ELF for ${node} (${names[node]}), the directive says ${other}`,
      ],
    ];
    for (const [id, path, body, arch, reason] of cases) {
      const started = performance.now();
      await deploy(agent, http.url(path), body, id, arch);
      const record = await settledDeployment(agent, id);
      assert.equal(record.state, "failed");
      assert.equal(record.error_message, reason);
      assert.ok(performance.now() - started < 5000, `${id} took ${performance.now() - started} ms`);
      await assert.rejects(Deno.stat(`${dir.path}/instances/bin-${id}`), Deno.errors.NotFound);
    }
  } finally {
    await agent.stop();
  }
});

Deno.test("an aborted activation stops its program, removes its instance and rejects with the reason", async () => {
  const driver = new URL("./native_abort_driver.ts", import.meta.url).pathname;
  for (const afterMs of [300, 0]) {
    await using dir = await tempDir();
    const out = await new Deno.Command("deno", {
      args: ["run", ...agentFlags(), driver, dir.path, String(afterMs)],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(30_000),
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    const result = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.equal(result.rejected, "cancelled while activating", stderr);
    assert.equal(result.same_reason, true);
    assert.ok(result.ms < 900, `rejected after ${result.ms} ms, before the start check ended`);
    assert.equal(result.listed, 0);
    assert.equal(result.dir_left, false);
    assert.deepEqual(await programPids(dir.path, "bin-abort"), [], "no process left behind");
    if (afterMs === 0) {
      assert.ok(!stderr.includes('"instance started"'), "an aborted signal starts nothing");
    }
  }
});

/**
 * Pids of the live processes that have `<dataDir>/instances/<instance>/program` as an argv word
 * (its path is argv[0], or argv[1] under a `#!` interpreter; zombies have no argv). Read from
 * /proc by grep (Deno reads /proc only with every permission), given the path on stdin so that
 * no argv of its own holds it.
 */
async function programPids(dataDir: string, instance: string): Promise<number[]> {
  const child = new Deno.Command("sh", {
    args: ["-c", "grep -lszxF -f - /proc/[0-9]*/cmdline; true"],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const stdin = child.stdin.getWriter();
  await stdin.write(encode(`${dataDir}/instances/${instance}/program`));
  await stdin.close();
  const out = await child.output();
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l !== "")
    .map((l) => Number(l.split("/")[2])).sort((a, b) => a - b);
}

/** The one process running an instance's program, once there is exactly one. */
async function onlyPid(dataDir: string, instance: string): Promise<number> {
  return await eventually(`exactly one ${instance}`, async () => {
    const pids = await programPids(dataDir, instance);
    return pids.length === 1 ? pids[0] : undefined;
  });
}

/** A service that counts aloud (`tick N` every 0.1 s, for 60 s at most) and beats a heartbeat. */
const TICKER = encode(`#!/bin/sh
echo "started $LOAM_INSTANCE_ID"
i=0
while [ $i -lt 600 ]; do echo "tick $i"; date +%s%N > heartbeat; sleep 0.1; i=$((i + 1)); done
`);

/** The highest `tick N` in an instance's logs through the API. */
async function lastTick(agent: AgentProcess, instance: string): Promise<number> {
  const res = await agent.request(`/v1/instances/${instance}/logs`, { token: agent.adminToken() });
  const { lines } = await res.json();
  const ticks = lines.flatMap((l: { line: string }) => {
    const m = /^tick (\d+)$/.exec(l.line);
    return m ? [Number(m[1])] : [];
  });
  return Math.max(-1, ...ticks);
}

/** A wrapper that becomes another program: its argv no longer names it, its pid does. */
const EXECS = encode("#!/bin/sh\necho handing over to sleep\nexec sleep 60\n");

/** The pid of `instance` as the agent's API shows it. */
async function apiPid(agent: AgentProcess, instance: string): Promise<number | null> {
  const res = await agent.request(`/v1/instances/${instance}`, { token: agent.adminToken() });
  return res.ok ? (await res.json()).pid : null;
}

/** Whether `pid` runs now (a zombie does not: it waits only for its parent to reap it). */
async function alive(pid: number): Promise<boolean> {
  const out = await new Deno.Command("ps", { args: ["-o", "stat=", "-p", String(pid)] }).output();
  const stat = new TextDecoder().decode(out.stdout).trim();
  return stat !== "" && !stat.startsWith("Z");
}

Deno.test("after kill -9 a restart adopts the programs left running: same pids, output followed, a crash restarted, a graceful stop leaves none", async () => {
  await using dir = await tempDir();
  await using http = startBlobServer({ "/svc": { body: TICKER }, "/execs": { body: EXECS } });
  const ids = ["nb-boot-1", "nb-boot-2", "nb-boot-3"];
  const agent = await startAgent(dir.path);
  const before = new Map<string, number>();
  let tickBefore = -1;
  try {
    for (const id of ids) await deploy(agent, http.url("/svc"), TICKER, id);
    await deploy(agent, http.url("/execs"), EXECS, "nb-execs");
    for (const id of ids) {
      assert.equal((await settledDeployment(agent, id)).state, "active");
      before.set(id, await onlyPid(dir.path, `bin-${id}`));
    }
    assert.equal((await settledDeployment(agent, "nb-execs")).state, "active");
    before.set("nb-execs", (await apiPid(agent, "bin-nb-execs"))!);
    tickBefore = await eventually("ticks", async () => {
      const n = await lastTick(agent, "bin-nb-boot-1");
      return n >= 0 ? n : undefined;
    });
  } finally {
    await agent.stop("SIGKILL");
  }
  for (const id of ids) {
    assert.deepEqual(await programPids(dir.path, `bin-${id}`), [before.get(id)], "left running");
  }
  const restarted = await startAgent(dir.path);
  let stopped: { code: number };
  try {
    const instances =
      (await (await restarted.request("/v1/instances", { token: restarted.adminToken() })).json())
        .instances;
    assert.equal(instances.length, ids.length + 1);
    // found by its pid record: its argv is sleep's now
    assert.equal(await apiPid(restarted, "bin-nb-execs"), before.get("nb-execs"));
    for (const id of ids) {
      assert.equal((await settledDeployment(restarted, id)).state, "active");
      const instance = instances.find((i: { instance_id: string }) =>
        i.instance_id === `bin-${id}`
      );
      assert.equal(instance.pid, before.get(id), `${id}: the same process, adopted`);
      assert.equal(instance.state, "running");
      assert.deepEqual(await programPids(dir.path, `bin-${id}`), [before.get(id)]);
      assert.ok(
        restarted.logs.some((l) =>
          l.msg === "adopted a program left running" && l.instance_id === `bin-${id}` &&
          l.pid === before.get(id)
        ),
      );
    }
    assert.ok(
      !restarted.logs.some((l) =>
        l.msg === "stopping a program left running by the previous agent"
      ),
    );
    // what it printed before the restart is still in its logs, and what it prints now arrives
    const logs = await (await restarted.request("/v1/instances/bin-nb-boot-1/logs", {
      token: restarted.adminToken(),
    })).json();
    assert.ok(logs.lines.some((l: { line: string }) => l.line === "started bin-nb-boot-1"));
    await eventually(
      "new output of the adopted program",
      async () => (await lastTick(restarted, "bin-nb-boot-1")) > tickBefore + 5 || undefined,
    );
    // an adopted program that dies is restarted like a child: a new process, one restart
    await new Deno.Command("sh", { args: ["-c", `kill -9 ${before.get("nb-boot-2")}`] }).output();
    const again = await eventually("the crashed adopted program restarted", async () => {
      const pids = await programPids(dir.path, "bin-nb-boot-2");
      return pids.length === 1 && pids[0] !== before.get("nb-boot-2") ? pids[0] : undefined;
    });
    const view = await (await restarted.request("/v1/instances/bin-nb-boot-2", {
      token: restarted.adminToken(),
    })).json();
    assert.equal(view.pid, again);
    assert.equal(view.restarts, 1);
  } finally {
    stopped = await restarted.stop();
  }
  assert.equal(stopped.code, 0, restarted.lines.join("\n"));
  for (const id of ids) {
    assert.deepEqual(await programPids(dir.path, `bin-${id}`), [], "no process left behind");
  }
  assert.ok(!await alive(before.get("nb-execs")!), "the exec'd program was stopped too");
});

Deno.test("after kill -9 during the start check, the restart stops the left-over and activates afresh: no Text file busy, no orphan", async () => {
  await using dir = await tempDir();
  await using http = startBlobServer({ "/svc": { body: SERVICE } });
  const agent = await startAgent(dir.path);
  let leftover: number;
  try {
    await deploy(agent, http.url("/svc"), SERVICE, "nb-act");
    const started = await agent.waitForLog((l) =>
      l.msg === "instance started" && l.instance_id === "bin-nb-act"
    );
    leftover = started.pid as number;
  } finally {
    await agent.stop("SIGKILL");
  }
  const record = JSON.parse(await Deno.readTextFile(`${dir.path}/deployments/nb-act.json`));
  assert.equal(record.state, "activating", "killed within the 1 s start check");
  assert.deepEqual(await programPids(dir.path, "bin-nb-act"), [leftover]);
  const restarted = await startAgent(dir.path);
  let stopped: { code: number };
  try {
    const done = await settledDeployment(restarted, "nb-act");
    assert.equal(done.state, "active", done.error_message);
    const pid = await onlyPid(dir.path, "bin-nb-act");
    assert.notEqual(pid, leftover);
    assert.ok(!restarted.lines.some((l) => /Text file busy/.test(l)), restarted.lines.join("\n"));
    assert.ok(
      restarted.logs.some((l) =>
        l.msg === "left-over program stopped" && l.instance_id === "bin-nb-act" &&
        l.pid === leftover
      ),
    );
  } finally {
    stopped = await restarted.stop();
  }
  assert.equal(stopped.code, 0, restarted.lines.join("\n"));
  assert.deepEqual(await programPids(dir.path, "bin-nb-act"), [], "no process left behind");
});

/** Ignores SIGTERM (so does the sleep it runs: an ignored signal stays ignored across exec). */
const STUBBORN = encode(`#!/bin/sh
trap '' TERM
echo "ignoring SIGTERM"
i=0
while [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
`);

Deno.test("a graceful stop SIGKILLs a program that ignores SIGTERM after the grace period, and waits for it", async () => {
  await using dir = await tempDir();
  await using http = startBlobServer({ "/stubborn": { body: STUBBORN } });
  const agent = await startAgent(dir.path);
  let stopped: { code: number; ms: number };
  try {
    await deploy(agent, http.url("/stubborn"), STUBBORN, "nb-stubborn");
    assert.equal((await settledDeployment(agent, "nb-stubborn")).state, "active");
    await onlyPid(dir.path, "bin-nb-stubborn");
  } finally {
    stopped = await agent.stop();
  }
  assert.equal(stopped.code, 0, agent.lines.join("\n"));
  assert.ok(stopped.ms >= 2900, `stopped after ${stopped.ms} ms, within the grace period`);
  assert.deepEqual(await programPids(dir.path, "bin-nb-stubborn"), [], "no process left behind");
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
ln -sf "$1/identity.key" "$LOAM_INSTANCE_DIR.stdout" 2>/dev/null && echo "output: REPLACED" || echo "output: fixed"
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
    // its output file is its own to write, not to swap for a link to what the agent may read
    assert.ok(lines.includes("output: fixed"), lines.join("\n"));
    const env = lines.find((l: string) => l.startsWith("env:"))!;
    assert.doesNotMatch(env, /SECRET_OF_THE_AGENT/);
    assert.deepEqual(
      env.slice(5).trim().split(" ").filter((n: string) => !["PWD", "SHLVL", "_"].includes(n)),
      [
        "HOME",
        "LOAM_INSTANCE_DIR",
        "LOAM_INSTANCE_ID",
        "PATH",
      ],
    );
  } finally {
    await agent.stop();
  }
});
