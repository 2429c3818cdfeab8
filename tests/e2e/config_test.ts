import assert from "node:assert/strict";
import { runLoam, spawnAgent, startAgent, tempDir } from "./harness.ts";

Deno.test("a running agent takes values from file, env and flags in that order", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/loam.toml`;
  await Deno.writeTextFile(
    file,
    `[node]\nid = "file-id"\nformation_id = "file-f"\ncapabilities = ["camera"]\n`,
  );
  const agent = await startAgent(
    `${dir.path}/data`,
    ["--config", file, "--formation-id", "flag-f"],
    {
      env: { LOAM_NODE_ID: "env-id" },
    },
  );
  try {
    const s = await (await agent.request("/v1/status", { token: agent.adminToken() })).json();
    assert.equal(s.node_id, "env-id");
    assert.equal(s.formation_id, "flag-f");
    assert.deepEqual(s.capabilities, ["camera"]);
  } finally {
    await agent.stop();
  }
});

Deno.test("config print shows the effective config with sources; --json parses", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/loam.toml`;
  await Deno.writeTextFile(file, `[api]\nlisten = "127.0.0.1:7500"\n`);
  const res = await runLoam(["config", "print", "--config", file, "--log-level", "debug"], {
    env: { LOAM_NODE_ID: "n1", LOAM_DATA_DIR: `${dir.path}/d` },
  });
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, new RegExp(`^# config file: ${file}$`, "m"));
  assert.match(res.stdout, new RegExp(`^# data dir: ${dir.path}/d$`, "m"));
  assert.match(res.stdout, new RegExp(`^listen = "127\\.0\\.0\\.1:7500"  # file ${file}$`, "m"));
  assert.match(res.stdout, /^id = "n1" {2}# env LOAM_NODE_ID$/m);
  assert.match(res.stdout, /^level = "debug" {2}# flag --log-level$/m);
  assert.match(res.stdout, /^public_metrics = false {2}# default$/m);
  const json = await runLoam(["config", "print", "--json"], { env: { LOAM_NODE_ID: "n2" } });
  assert.equal(JSON.parse(json.stdout).node.id, "n2");
});

Deno.test("bad configuration stops start-up with one message and exit 2", async () => {
  await using dir = await tempDir();
  const write = async (name: string, text: string) => {
    await Deno.writeTextFile(`${dir.path}/${name}`, text);
    return `${dir.path}/${name}`;
  };
  const cases: { args: string[]; env?: Record<string, string>; expect: RegExp }[] = [
    {
      args: ["--config", await write("a.toml", `[api]\nlisten = "nonsense"\n`)],
      expect: /invalid config value api\.listen = "nonsense"/,
    },
    {
      args: ["--config", await write("b.toml", `[api]\nlisen = "x"\n`)],
      expect: /unknown config key "api\.lisen"/,
    },
    {
      args: ["--config", await write("c.toml", `[log]\nlevel = 3\n`)],
      expect: /log\.level = 3 \(from file/,
    },
    {
      args: ["--config", await write("e.toml", `[fetch]\ntimeout_seconds = 1e400\n`)],
      expect: /fetch\.timeout_seconds = Infinity \(from file/,
    },
    {
      args: ["--set", "fetch.timeout_seconds=1e400"],
      expect: /fetch\.timeout_seconds = "1e400" \(from flag --set\)/,
    },
    { args: ["--config", await write("d.toml", `[[[`)], expect: /is not valid TOML/ },
    { args: ["--config", `${dir.path}/missing.toml`], expect: /cannot read config file/ },
    { args: [], env: { LOAM_LOG_LEVL: "debug" }, expect: /LOAM_LOG_LEVL is not a loam setting/ },
    {
      args: ["--set", "api.public_metrics=maybe"],
      expect: /api\.public_metrics = "maybe" \(from flag --set\)/,
    },
    { args: ["--bogus"], expect: /run: Unknown option '--bogus'/ },
  ];
  for (const c of cases) {
    const { code, stderr } = await runLoam(["run", "--data-dir", `${dir.path}/data`, ...c.args], {
      env: c.env,
    });
    assert.equal(code, 2, `${c.expect}: ${stderr}`);
    assert.match(stderr, c.expect);
    assert.equal(stderr.trim().split("\n").length, 1, `one line: ${stderr}`);
    assert.match(stderr, /^loam: /);
  }
  await assert.rejects(Deno.stat(`${dir.path}/data`), Deno.errors.NotFound, "nothing written");
});

Deno.test("an API port in use stops start-up with exit 2 naming api.listen", async () => {
  await using dir = await tempDir();
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  const { code, stderr } = await spawnAgent(dir.path, ["--api-listen", `127.0.0.1:${port}`])
    .exited();
  assert.equal(code, 2);
  assert.match(
    stderr,
    new RegExp(`api\\.listen = "127\\.0\\.0\\.1:${port}": address already in use`),
  );
  assert.doesNotMatch(stderr, /\n\s+at /);
});

Deno.test("a mesh port in use stops start-up with exit 2 naming mesh.listen", async () => {
  await using dir = await tempDir();
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  const { code, stderr } = await spawnAgent(dir.path, [
    "--mesh-listen",
    `/ip4/127.0.0.1/tcp/${port}`,
  ])
    .exited();
  assert.equal(code, 2, stderr);
  const message = stderr.split("\n").filter((l) => !l.startsWith("{"));
  assert.equal(message.length, 1, `one line besides the JSON logs: ${stderr}`);
  assert.match(
    message[0]!,
    new RegExp(
      `^loam: mesh\\.listen = "/ip4/127\\.0\\.0\\.1/tcp/${port}": .*address already in use ` +
        `\\(another loam or program has it\\)$`,
    ),
  );
  await assert.rejects(Deno.stat(`${dir.path}/api/address`), Deno.errors.NotFound);

  const udp = await spawnAgent(dir.path, ["--mesh-listen", "/ip4/127.0.0.1/udp/9"]).exited();
  assert.equal(udp.code, 2, udp.stderr);
  assert.match(
    udp.stderr,
    /\nloam: mesh\.listen = "\/ip4\/127\.0\.0\.1\/udp\/9": .*not a TCP address \(expected [^\n]*$/,
  );
});
