import assert from "node:assert/strict";
import { runLoam, startAgent, tempDir } from "./harness.ts";
import denoConfig from "../../deno.json" with { type: "json" };

const COMMANDS = [
  "run",
  "status",
  "deployments",
  "instances",
  "logs",
  "peers",
  "fetch",
  "deploy",
  "blobs",
  "token",
  "keys",
  "config",
  "completion",
  "version",
];

Deno.test("loam version and --version print the version, kind and target", async () => {
  // a built file (LOAM_TEST_BINARY) is the sfx kind; its version is what the build was given
  const packaged = Deno.env.get("LOAM_TEST_BINARY") !== undefined;
  const kind = packaged ? "sfx" : "source";
  for (const args of [["version"], ["--version"], ["-V"]]) {
    const res = await runLoam(args);
    assert.equal(res.code, 0);
    assert.match(res.stdout, new RegExp(`^loam \\S+ \\(${kind}, ${Deno.build.target}, deno \\d`));
  }
  const json = JSON.parse((await runLoam(["version", "--json"])).stdout);
  assert.equal(json.kind, kind);
  assert.equal(json.target, Deno.build.target);
  if (packaged) {
    assert.match(json.payload_sha256, /^[0-9a-f]{64}$/);
    assert.equal((await runLoam(["version", "--verify"])).code, 0);
    return;
  }
  assert.deepEqual(json, {
    version: denoConfig.version,
    kind: "source",
    target: Deno.build.target,
    deno_version: Deno.version.deno,
    payload_sha256: null,
    runtime_dir: null,
    file: null,
  });
  const verify = await runLoam(["version", "--verify"]);
  assert.equal(verify.code, 2);
  assert.match(verify.stderr, /runs from source; there is no payload/);
});

Deno.test("--help works for loam and every command", async () => {
  const top = await runLoam(["--help"]);
  assert.equal(top.code, 0);
  for (const name of COMMANDS) assert.match(top.stdout, new RegExp(`^  ${name}\\s+\\S`, "m"));
  for (const name of COMMANDS) {
    for (const args of [[name, "--help"], ["help", name]]) {
      const res = await runLoam(args);
      assert.equal(res.code, 0, `${args.join(" ")}: ${res.stderr}`);
      assert.match(res.stdout, /^Usage:/, args.join(" "));
    }
  }
  // a usage error goes to stderr with exit 2; --help to stdout with exit 0
  const none = await runLoam([]);
  assert.equal(none.code, 2);
  assert.equal(none.stdout, "");
  assert.match(none.stderr, /^loam: edge agent/);
  const noAction = await runLoam(["token"]);
  assert.equal(noAction.code, 2);
  assert.equal(noAction.stdout, "");
  assert.match(noAction.stderr, /^Usage:\n {2}loam token create/);
  const unknown = await runLoam(["frobnicate"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
});

Deno.test("loam status prints a summary and --json the raw object, from the same data dir", async () => {
  await using dir = await tempDir();
  const agent = await startAgent(dir.path, ["--node-id", "edge-9"]);
  try {
    // port 0: status finds the real address through <data>/api/address
    const human = await runLoam(["status", "--data-dir", dir.path, "--api-listen", "127.0.0.1:0"]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^node\s+edge-9$/m);
    assert.match(human.stdout, /^state\s+ready$/m);
    assert.match(human.stdout, /^peer id\s+12D3Koo\S+$/m);
    assert.match(human.stdout, /^memory\s+[\d.]+ GiB free of [\d.]+ GiB$/m);
    assert.match(human.stdout, /^mesh\s+0 peers on network "default"$/m);
    assert.match(human.stdout, /^listening\s+\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3Koo\S+$/m);
    const json = await runLoam([
      "status",
      "--json",
      "--data-dir",
      dir.path,
      "--api-listen",
      "127.0.0.1:0",
    ]);
    assert.equal(JSON.parse(json.stdout).node_id, "edge-9");

    const ro =
      (await runLoam(["token", "create", "--scopes", "metrics:read", "--data-dir", dir.path]))
        .stdout.trim();
    const denied = await runLoam([
      "status",
      "--token",
      ro,
      "--data-dir",
      dir.path,
      "--api-listen",
      "127.0.0.1:0",
    ]);
    assert.equal(denied.code, 1);
    assert.match(
      denied.stderr,
      /agent answered 403 for \/v1\/status \(forbidden: token "token-\w+" lacks scope status:read\)/,
    );
  } finally {
    await agent.stop();
  }
  const down = await runLoam(["status", "--data-dir", dir.path, "--api-listen", "127.0.0.1:1"]);
  assert.equal(down.code, 1);
  assert.match(
    down.stderr,
    /cannot reach the agent at http:\/\/127\.0\.0\.1:1 .*is 'loam run' running\?/,
  );
});

Deno.test("every command on the data dir says what is wrong with an unusable one", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/file`, "");
  const cases = [
    { data: `${dir.path}/file/state`, why: `${dir.path}/file is a file, not a directory` },
    { data: `/dev/shm/loam-test-${crypto.randomUUID()}`, why: "is under /dev, /proc or /sys" },
  ];
  const hex = "0".repeat(64);
  for (const { data, why } of cases) {
    for (
      const args of [
        ["token", "create", "--scopes", "status:read"],
        ["blobs", "ls"],
        ["fetch", "http://127.0.0.1:9/x", "--sha256", hex],
        ["token", "list"],
        ["token", "revoke", "nobody"],
        ["status"],
        ["keys", "show"],
      ]
    ) {
      const { code, stderr } = await runLoam([...args, "--data-dir", data]);
      assert.equal(code, 2, `${args.join(" ")}: ${stderr}`);
      assert.ok(stderr.startsWith(`loam: data dir ${data} is not usable: `), stderr);
      assert.ok(stderr.includes(why), stderr);
      assert.doesNotMatch(stderr, /allow-all/);
    }
  }
});
