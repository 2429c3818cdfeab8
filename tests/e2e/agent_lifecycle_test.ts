import assert from "node:assert/strict";
import { runLoam, spawnAgent, startAgent, tempDir } from "./harness.ts";
import { randomBytes, sha256Hex, startBlobServer } from "../fixtures/blob_server.ts";
import { sleep } from "../../src/system/sleep.ts";

Deno.test("first start creates data dir, identity and admin token; peer id survives restart", async () => {
  await using dir = await tempDir();
  const dataDir = `${dir.path}/state`;
  const first = await startAgent(dataDir, ["--set", "workloads.user="]);
  const created = first.logs.find((l) => l.msg === "identity created");
  assert.ok(created, "first start logs 'identity created'");
  assert.equal((await Deno.stat(`${dataDir}/identity.key`)).mode! & 0o777, 0o600);
  assert.equal((await Deno.stat(`${dataDir}/api/admin.token`)).mode! & 0o777, 0o600);
  assert.equal((await Deno.stat(`${dataDir}/api/tokens.json`)).mode! & 0o777, 0o600);
  assert.equal((await Deno.stat(dataDir)).mode! & 0o777, 0o700);
  const token = first.adminToken();
  const status1 = await (await first.request("/v1/status", { token })).json();
  assert.equal((await first.stop()).code, 0);

  const second = await startAgent(dataDir);
  // as root, workloads run as workloads.user (nobody): they may pass through, not list
  const expected = Deno.uid() === 0 ? 0o711 : 0o700;
  assert.equal((await Deno.stat(dataDir)).mode! & 0o777, expected);
  assert.equal((await Deno.stat(`${dataDir}/api`)).mode! & 0o777, 0o700);
  const loaded = second.logs.find((l) => l.msg === "identity loaded");
  assert.equal(loaded?.peer_id, created.peer_id);
  assert.equal(second.adminToken(), token, "admin token is not replaced on restart");
  const status2 = await (await second.request("/v1/status", { token })).json();
  assert.equal(status2.peer_id, status1.peer_id);
  assert.equal((await second.stop()).code, 0);
});

Deno.test("/v1/status reports identity, platform and a real hardware probe", async () => {
  await using dir = await tempDir();
  const agent = await startAgent(dir.path, ["--node-id", "edge-7", "--formation-id", "north"]);
  try {
    const res = await agent.request("/v1/status", { token: agent.adminToken() });
    assert.equal(res.status, 200);
    const s = await res.json();
    for (
      const key of [
        "node_id",
        "peer_id",
        "version",
        "uptime_s",
        "arch",
        "os",
        "formation_id",
        "data_dir",
        "api",
        "hardware",
      ]
    ) {
      assert.ok(key in s, `status has ${key}`);
    }
    assert.equal(s.node_id, "edge-7");
    assert.equal(s.formation_id, "north");
    assert.match(s.peer_id, /^12D3Koo/);
    assert.equal(s.arch, Deno.build.arch);
    assert.equal(s.os, "linux");
    assert.equal(s.data_dir, dir.path);
    assert.equal(`http://${s.api}`, agent.apiUrl);
    assert.equal(s.hardware.cpu.count, navigator.hardwareConcurrency);
    assert.ok(s.hardware.cpu.model.length > 0);
    assert.ok(s.hardware.ram.total_mb > 0 && s.hardware.ram.free_mb <= s.hardware.ram.total_mb);
    assert.ok(s.hardware.disk.free_mb > 0 && s.hardware.disk.free_mb <= s.hardware.disk.total_mb);
    assert.ok(Array.isArray(s.hardware.gpus));
  } finally {
    await agent.stop();
  }
});

Deno.test("SIGTERM and SIGINT stop the agent gracefully with exit 0 within 5 s", async () => {
  await using dir = await tempDir();
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    const agent = await startAgent(dir.path);
    const { code, ms } = await agent.stop(signal);
    assert.equal(code, 0, `${signal}: exit code`);
    assert.ok(ms < 5000, `${signal}: stopped in ${ms} ms`);
    assert.ok(agent.logs.some((l) => l.msg === "stopped"));
    await assert.rejects(Deno.stat(`${dir.path}/api/address`), Deno.errors.NotFound);
  }
});

Deno.test("readyz turns 503 while draining, livez stays 200, then the API closes", async () => {
  await using dir = await tempDir();
  const agent = await startAgent(dir.path, ["--set", "api.drain_seconds=2"]);
  assert.equal((await agent.request("/readyz")).status, 200);
  const stopping = agent.stop("SIGTERM");
  await agent.waitForLog((l) => l.msg === "shutting down", 5000);
  const readyz = await agent.request("/readyz");
  assert.equal(readyz.status, 503);
  assert.equal((await readyz.json()).error.code, "not_ready");
  const livez = await agent.request("/livez");
  assert.equal(livez.status, 200);
  await livez.body?.cancel();
  const { code, ms } = await stopping;
  assert.equal(code, 0);
  assert.ok(ms < 5000, `stopped in ${ms} ms`);
  await assert.rejects(agent.request("/livez"), "API no longer accepts connections");
});

Deno.test("logs are JSON lines with --log-format json and human lines with --log-format human", async () => {
  await using dir = await tempDir();
  const json = await startAgent(dir.path);
  await json.stop();
  const records = json.lines.filter((l) => l.startsWith("{"));
  assert.ok(records.length >= 4);
  for (const line of records) {
    const rec = JSON.parse(line);
    assert.ok(rec.ts && rec.level && rec.msg, line);
  }

  const human = spawnAgent(dir.path, ["--log-format", "human"]);
  const deadline = Date.now() + 30_000;
  while (!human.lines.some((l) => l.includes("agent ready")) && Date.now() < deadline) {
    await sleep(100);
  }
  await human.stop();
  const ready = human.lines.find((l) => l.includes("agent ready"));
  assert.match(ready ?? "", /^\d{4}-\d\d-\d\dT\S+ INFO {2}agent ready node_id=/);
});

Deno.test("loose permissions on the token files are warned about", async () => {
  await using dir = await tempDir();
  await (await startAgent(dir.path)).stop();
  await Deno.chmod(`${dir.path}/api/admin.token`, 0o644);
  const agent = await startAgent(dir.path);
  await agent.stop();
  const warning = agent.logs.find((l) =>
    l.level === "warn" && l.path === `${dir.path}/api/admin.token`
  );
  assert.ok(warning, "warns about admin.token");
  assert.equal(warning.mode, "0644");
});

Deno.test("a corrupted identity key stops start-up with exit 2 and is left untouched", async () => {
  await using dir = await tempDir();
  await (await startAgent(dir.path)).stop();
  const garbage = new TextEncoder().encode("not a protobuf key at all");
  await Deno.writeFile(`${dir.path}/identity.key`, garbage, { mode: 0o600 });
  const { code, stderr } = await spawnAgent(dir.path).exited();
  assert.equal(code, 2);
  assert.match(stderr, /identity key .*identity\.key is corrupt/);
  assert.doesNotMatch(stderr, /\n\s+at /, "no stack trace");
  assert.deepEqual(await Deno.readFile(`${dir.path}/identity.key`), garbage);
});

Deno.test("a data dir that cannot be created stops start-up with exit 2 naming it", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/file`, "");
  const bad = `${dir.path}/file/state`;
  const { code, stderr } = await spawnAgent(bad).exited();
  assert.equal(code, 2);
  assert.ok(
    stderr.includes(`data dir ${bad} is not usable: ${dir.path}/file is a file, not a directory`),
    stderr,
  );
});

Deno.test("a data dir Deno keeps from loam (under /dev) is named as such, with no --allow-all", async () => {
  const bad = `/dev/shm/loam-test-${crypto.randomUUID()}`;
  const { code, stderr } = await spawnAgent(bad).exited();
  assert.equal(code, 2);
  assert.ok(
    stderr.includes(
      `data dir ${bad} is not usable: ${bad}/api is under /dev, /proc or /sys, which loam may ` +
        "not use",
    ),
    stderr,
  );
  assert.doesNotMatch(stderr, /allow-all/);
  assert.equal(stderr.trim().split("\n").length, 1, stderr);
});

Deno.test("keys generate/show print a peer id; generate never overwrites", async () => {
  await using dir = await tempDir();
  const key = `${dir.path}/c2.key`;
  const made = await runLoam(["keys", "generate", "--out", key, "--json"]);
  assert.equal(made.code, 0, made.stderr);
  const generated = JSON.parse(made.stdout);
  assert.match(generated.peer_id, /^12D3Koo/);
  assert.equal((await Deno.stat(key)).mode! & 0o777, 0o600);
  const shown = await runLoam(["keys", "show", key, "--json"]);
  assert.deepEqual(JSON.parse(shown.stdout), generated);
  const again = await runLoam(["keys", "generate", "--out", key]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already exists; refusing to overwrite/);

  const agent = await startAgent(`${dir.path}/node`);
  await agent.stop();
  const own = await runLoam(["keys", "show", "--data-dir", `${dir.path}/node`, "--json"]);
  const created = agent.logs.find((l) => l.msg === "identity created");
  assert.equal(JSON.parse(own.stdout).peer_id, created?.peer_id);
});

Deno.test("SIGTERM during a download: the fetch is cancelled, exit 0 within 5 s, partial kept", async () => {
  await using dir = await tempDir();
  const body = randomBytes(4 * 1024 * 1024);
  await using server = startBlobServer({ "/slow": { body, bytesPerSecond: 512 * 1024 } });
  const agent = await startAgent(dir.path);
  const hex = sha256Hex(body);
  const pending = fetch(`${agent.apiUrl}/v1/blobs`, {
    method: "POST",
    headers: { authorization: `Bearer ${agent.adminToken()}` },
    body: JSON.stringify({ sha256: hex, urls: [server.url("/slow")] }),
  });
  const partial = `${dir.path}/blobs/partial/${hex}`;
  const deadline = Date.now() + 10_000;
  while ((await Deno.stat(partial).then((s) => s.size, () => 0)) === 0 && Date.now() < deadline) {
    await sleep(100);
  }
  const { code, ms } = await agent.stop("SIGTERM");
  assert.equal(code, 0);
  assert.ok(ms < 5000, `stopped in ${ms} ms`);
  const res = await pending;
  assert.equal(res.status, 502);
  assert.match((await res.json()).error.message, /fetch cancelled: loam is stopping/);
  assert.ok((await Deno.stat(partial)).size > 0, "the partial stays for a later resume");
});
