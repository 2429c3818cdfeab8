import assert from "node:assert/strict";
import { loadConfig } from "./load.ts";
import { UserError } from "../system/errors.ts";

async function withFile(text: string, fn: (path: string) => Promise<void>): Promise<void> {
  const path = await Deno.makeTempFile({ suffix: ".toml" });
  try {
    await Deno.writeTextFile(path, text);
    await fn(path);
  } finally {
    await Deno.remove(path);
  }
}

async function rejectsWith(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof UserError, `UserError, got ${err}`);
    assert.equal(err.exitCode, 2);
    assert.match(err.message, pattern);
    return true;
  });
}

Deno.test("defaults apply with no file, env or flags", async () => {
  const { config, sources, configFile } = await loadConfig({
    configPath: undefined,
    env: {},
    flags: [],
  });
  assert.equal(config.api.listen, "127.0.0.1:7411");
  assert.equal(config.api.public_metrics, false);
  assert.equal(config.log.level, "info");
  assert.equal(config.node.id, Deno.hostname());
  assert.equal(config.node.formation_id, undefined);
  assert.deepEqual(config.node.capabilities, []);
  assert.deepEqual(sources, {});
  assert.equal(
    configFile,
    (await Deno.stat("/etc/loam/loam.toml").then(() => true, () => false))
      ? "/etc/loam/loam.toml"
      : undefined,
  );
});

Deno.test("precedence: flags > LOAM_* env > TOML file > defaults", async () => {
  const toml =
    `[node]\nid = "from-file"\nformation_id = "file-formation"\ncapabilities = ["camera"]\n` +
    `[api]\nlisten = "127.0.0.1:7001"\npublic_metrics = true\n[log]\nlevel = "warn"\n`;
  await withFile(toml, async (path) => {
    const { config, sources } = await loadConfig({
      configPath: path,
      env: {
        LOAM_NODE_ID: "from-env",
        LOAM_API_LISTEN: "127.0.0.1:7002",
        LOAM_NODE_CAPABILITIES: "gps, lidar",
        HOME: "/x",
      },
      flags: [{ key: "node.id", value: "from-flag", flag: "--node-id" }],
    });
    assert.equal(config.node.id, "from-flag");
    assert.equal(sources["node.id"], "flag --node-id");
    assert.equal(config.api.listen, "127.0.0.1:7002");
    assert.equal(sources["api.listen"], "env LOAM_API_LISTEN");
    assert.deepEqual(config.node.capabilities, ["gps", "lidar"]);
    assert.equal(config.node.formation_id, "file-formation");
    assert.equal(sources["node.formation_id"], `file ${path}`);
    assert.equal(config.api.public_metrics, true);
    assert.equal(config.log.level, "warn");
    assert.equal(config.log.format, "auto");
    assert.equal(sources["log.format"], undefined);
  });
});

Deno.test("$LOAM_CONFIG names the file unless --config is given", async () => {
  await withFile(`[node]\nid = "env-file"\n`, async (envPath) => {
    await withFile(`[node]\nid = "flag-file"\n`, async (flagPath) => {
      const viaEnv = await loadConfig({ env: { LOAM_CONFIG: envPath }, flags: [] });
      assert.equal(viaEnv.config.node.id, "env-file");
      const viaFlag = await loadConfig({
        configPath: flagPath,
        env: { LOAM_CONFIG: envPath },
        flags: [],
      });
      assert.equal(viaFlag.config.node.id, "flag-file");
    });
  });
});

Deno.test("env and flag text is converted to the key's type", async () => {
  const { config } = await loadConfig({
    env: { LOAM_API_PUBLIC_METRICS: "true", LOAM_API_MAX_BODY_BYTES: "4096" },
    flags: [{ key: "api.drain_seconds", value: "1.5", flag: "--set" }],
  });
  assert.equal(config.api.public_metrics, true);
  assert.equal(config.api.max_body_bytes, 4096);
  assert.equal(config.api.drain_seconds, 1.5);
});

Deno.test("config errors name the key, the value, the source and the reason", async () => {
  await withFile(`[api]\nlisten = "nonsense"\n`, (path) =>
    rejectsWith(
      loadConfig({ configPath: path, env: {}, flags: [] }),
      new RegExp(`api\\.listen = "nonsense" \\(from file ${path}\\): expected host:port`),
    ));
  await withFile(
    `[api]\nlisten = "127.0.0.1:7411"\nlisen = 3\n`,
    (path) =>
      rejectsWith(
        loadConfig({ configPath: path, env: {}, flags: [] }),
        /unknown config key "api\.lisen" in .*known keys: node\.id/,
      ),
  );
  await withFile(
    `[nodes]\nid = "x"\n`,
    (path) =>
      rejectsWith(
        loadConfig({ configPath: path, env: {}, flags: [] }),
        /unknown config key "nodes"/,
      ),
  );
  await withFile(`[api]\npublic_metrics = "yes"\n`, (path) =>
    rejectsWith(
      loadConfig({ configPath: path, env: {}, flags: [] }),
      /api\.public_metrics = "yes" \(from file .*\): Invalid input: expected boolean, received string/,
    ));
  await withFile(
    `[api\nlisten = 1`,
    (path) =>
      rejectsWith(loadConfig({ configPath: path, env: {}, flags: [] }), /is not valid TOML: /),
  );
  await withFile(
    `listen = "x"\n`,
    (path) =>
      rejectsWith(
        loadConfig({ configPath: path, env: {}, flags: [] }),
        /top-level key "listen" must be a \[section\] table/,
      ),
  );
  await rejectsWith(
    loadConfig({ configPath: "/nonexistent/loam.toml", env: {}, flags: [] }),
    /cannot read config file \/nonexistent\/loam\.toml/,
  );
  await rejectsWith(
    loadConfig({ env: { LOAM_API_LISTNE: "x" }, flags: [] }),
    /environment variable LOAM_API_LISTNE is not a loam setting \(known: .*LOAM_API_LISTEN/,
  );
  await rejectsWith(
    loadConfig({ env: { LOAM_API_LISTEN: "127.0.0.1:99999" }, flags: [] }),
    /api\.listen = "127\.0\.0\.1:99999" \(from env LOAM_API_LISTEN\)/,
  );
  // not an address at all: refused for that, not crashed on by the loopback check after it
  await rejectsWith(
    loadConfig({ env: { LOAM_API_OLLAMA_LISTEN: "1e999" }, flags: [] }),
    /api\.ollama_listen = "1e999" \(from env LOAM_API_OLLAMA_LISTEN\): expected host:port/,
  );
  await rejectsWith(
    loadConfig({ env: { LOAM_API_OLLAMA_LISTEN: "0.0.0.0:11434" }, flags: [] }),
    /api\.ollama_listen = "0\.0\.0\.0:11434" .*must be a loopback address/,
  );
  await rejectsWith(
    loadConfig({ env: {}, flags: [{ key: "api.port", value: "1", flag: "--set" }] }),
    /--set: unknown config key "api\.port"/,
  );
  await rejectsWith(
    loadConfig({ env: {}, flags: [{ key: "log.level", value: "loud", flag: "--log-level" }] }),
    /log\.level = "loud" \(from flag --log-level\)/,
  );
  await rejectsWith(
    loadConfig({ env: { LOAM_NODE_CAPABILITIES: "Camera" }, flags: [] }),
    /node\.capabilities\.0 = "Camera" \(from env LOAM_NODE_CAPABILITIES\)/,
  );
});

Deno.test("a number too large for a double is reported as given, not as null", async () => {
  for (const [literal, shown] of [["1e400", "Infinity"], ["-inf", "-Infinity"], ["nan", "NaN"]]) {
    await withFile(`[fetch]\ntimeout_seconds = ${literal}\n`, (path) =>
      rejectsWith(
        loadConfig({ configPath: path, env: {}, flags: [] }),
        new RegExp(`fetch\\.timeout_seconds = ${shown} \\(from file ${path}\\): `),
      ));
  }
  await rejectsWith(
    loadConfig({ env: { LOAM_FETCH_TIMEOUT_SECONDS: "1e400" }, flags: [] }),
    /fetch\.timeout_seconds = "1e400" \(from env LOAM_FETCH_TIMEOUT_SECONDS\)/,
  );
  await rejectsWith(
    loadConfig({
      env: {},
      flags: [{ key: "fetch.timeout_seconds", value: "1e400", flag: "--set" }],
    }),
    /fetch\.timeout_seconds = "1e400" \(from flag --set\)/,
  );
});

Deno.test("a section's sub-table (mesh.limits) is set from the file, the env and --set", async () => {
  await withFile("[mesh.limits]\ngossip_per_second = 20\n", async (path) => {
    const fromFile = await loadConfig({ configPath: path, env: {}, flags: [] });
    assert.equal(fromFile.config.mesh.limits.gossip_per_second, 20);
    assert.equal(fromFile.config.mesh.limits.blob_streams_per_peer, 8, "the rest defaulted");
    const layered = await loadConfig({
      configPath: path,
      env: { LOAM_MESH_LIMITS_GOSSIP_PER_SECOND: "30" },
      flags: [{ key: "mesh.limits.blob_streams_per_peer", value: "2", flag: "--set" }],
    });
    assert.equal(layered.config.mesh.limits.gossip_per_second, 30);
    assert.equal(layered.config.mesh.limits.blob_streams_per_peer, 2);
    assert.equal(
      layered.sources["mesh.limits.gossip_per_second"],
      "env LOAM_MESH_LIMITS_GOSSIP_PER_SECOND",
    );
  });
  await rejectsWith(
    loadConfig({
      configPath: undefined,
      env: { LOAM_MESH_LIMITS_GOSSIP_PER_SECOND: "-1" },
      flags: [],
    }),
    /mesh\.limits\.gossip_per_second.*env LOAM_MESH_LIMITS_GOSSIP_PER_SECOND/,
  );
  await withFile("[mesh.limits]\nstreams = 1\n", async (path) => {
    await rejectsWith(
      loadConfig({ configPath: path, env: {}, flags: [] }),
      /unknown config key "mesh\.limits\.streams"/,
    );
  });
});
