/**
 * The model and agent registry on one real agent: the API with its scopes, `loam registry`,
 * 1,000 entries kept across a restart, and a damaged registry file that does not keep the agent
 * from starting; and three agents replicating it over gossip and `/loam/registry-sync/1`.
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type AgentProcess, runLoam, startAgent, tempDir } from "./harness.ts";
import { eventually, peersOf } from "./mesh_helpers.ts";
import { startTestPeer } from "../fixtures/mesh_peer.ts";
import { sealEnvelope } from "../../src/protocol/envelope.ts";
import { settledDeployment } from "./deploy_helpers.ts";
import { sha256Hex, startBlobServer } from "../fixtures/blob_server.ts";
import { buildTinyGguf } from "../../tasks/gen_tiny_gguf.ts";

const model = (id: string, extra: Record<string, unknown> = {}) => ({
  model_id: id,
  name: `Model ${id}`,
  version: "1.0.0",
  ...extra,
});

async function call(
  agent: AgentProcess,
  path: string,
  token: string,
  method = "GET",
  body?: unknown,
) {
  const res = await agent.request(path, {
    method,
    token,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function token(dataDir: string, scopes: string): Promise<string> {
  const made = await runLoam(["token", "create", "--data-dir", dataDir, "--scopes", scopes]);
  assert.equal(made.code, 0, made.stderr);
  return made.stdout.trim();
}

Deno.test("registry API and CLI: scopes, validation, search, owner and revisions", async () => {
  await using dir = await tempDir();
  const agent = await startAgent(dir.path);
  try {
    const admin = agent.adminToken();
    const reader = await token(dir.path, "registry:read");
    const writer = await token(dir.path, "registry:write,registry:read");
    const looker = await token(dir.path, "status:read");

    const made = await call(
      agent,
      "/v1/registry/models",
      writer,
      "POST",
      model("llama-3-8b", {
        quantization: "GGUF",
        tags: ["chat", "8b"],
        capabilities: ["chat"],
        resource_requirements: { min_memory_mb: 16, requires_gpu: false },
      }),
    );
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const status = await call(agent, "/v1/status", admin);
    assert.equal(made.body.owner_id, status.body.peer_id);
    assert.equal(made.body.revision, 1);

    assert.equal((await call(agent, "/v1/registry/models", looker)).status, 403);
    assert.equal(
      (await call(agent, "/v1/registry/models", reader, "POST", model("x"))).status,
      403,
    );
    const bad = await call(agent, "/v1/registry/models", writer, "POST", { model_id: "a b" });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /model_id/);
    assert.equal(
      (await call(agent, "/v1/registry/models", writer, "POST", model("llama-3-8b"))).status,
      409,
    );
    await call(
      agent,
      "/v1/registry/models",
      writer,
      "POST",
      model("huge", {
        resource_requirements: { requires_gpu: true, min_vram_gb: 80 },
        tags: ["chat"],
      }),
    );

    const updated = await call(
      agent,
      "/v1/registry/models/llama-3-8b",
      writer,
      "PUT",
      model("llama-3-8b", { version: "1.1.0", tags: ["chat", "8b"], capabilities: ["chat"] }),
    );
    assert.equal(updated.body.revision, 2);
    assert.equal(updated.body.version, "1.1.0");

    const search = async (filters: Record<string, unknown>) =>
      (await call(agent, "/v1/registry/models/search", reader, "POST", filters)).body.models
        .map((m: { model_id: string }) => m.model_id);
    assert.deepEqual(await search({ tags: ["chat"] }), ["huge", "llama-3-8b"]);
    assert.deepEqual(await search({ text: "LLAMA" }), ["llama-3-8b"]);
    // this box has no 80 GB GPU
    assert.deepEqual(await search({ tags: ["chat"], fits_here: true }), ["llama-3-8b"]);
    assert.deepEqual(await search({ capability: "chat", framework: "pytorch" }), ["llama-3-8b"]);

    const agentEntry = { agent_id: "helper", name: "Helper", version: "0.1.0" };
    assert.equal(
      (await call(agent, "/v1/registry/agents", writer, "POST", agentEntry)).status,
      201,
    );

    // the CLI: add (a new revision when it exists), ls, show, rm
    const file = join(dir.path, "phi.json");
    await Deno.writeTextFile(file, JSON.stringify(model("phi-3")));
    const add = await runLoam(["registry", "add", file, "--data-dir", dir.path]);
    assert.equal(add.code, 0, add.stderr);
    await Deno.writeTextFile(file, JSON.stringify(model("phi-3", { version: "1.0.1" })));
    const again = await runLoam(["registry", "add", file, "--data-dir", dir.path]);
    assert.equal(JSON.parse(again.stdout).revision, 2);
    const ls = await runLoam(["registry", "--data-dir", dir.path]);
    assert.match(ls.stdout, /^phi-3\s+Model phi-3\s+1\.0\.1\s+LLM\s+2\s+\w{8}$/m);
    const agents = await runLoam(["registry", "ls", "--agents", "--data-dir", dir.path]);
    assert.match(agents.stdout, /^helper\s+Helper\s+0\.1\.0\s+Assistant/m);
    const rm = await runLoam(["registry", "rm", "phi-3", "--data-dir", dir.path]);
    assert.equal(rm.code, 0, rm.stderr);
    const gone = await runLoam(["registry", "show", "phi-3", "--data-dir", dir.path]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /404 .*no model phi-3/);
  } finally {
    await agent.stop();
  }
});

Deno.test("registry: 1,000 entries survive a restart; a damaged registry file is moved aside", async () => {
  await using dir = await tempDir();
  let agent = await startAgent(dir.path);
  const started = performance.now();
  try {
    for (let i = 0; i < 1000; i++) {
      const res = await call(
        agent,
        "/v1/registry/models",
        agent.adminToken(),
        "POST",
        model(`m${i}`),
      );
      assert.equal(res.status, 201);
    }
    console.log(
      `  1,000 entries published in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
  } finally {
    await agent.stop();
  }
  agent = await startAgent(dir.path);
  try {
    const list = await call(agent, "/v1/registry/models", agent.adminToken());
    assert.equal(list.body.models.length, 1000);
  } finally {
    await agent.stop();
  }
  await Deno.writeTextFile(join(dir.path, "registry.json"), '{"documents": [');
  agent = await startAgent(dir.path);
  try {
    assert.ok(
      agent.logs.some((l) => l.msg === "registry file unreadable: moved aside, starting empty"),
    );
    assert.deepEqual(
      (await call(agent, "/v1/registry/models", agent.adminToken())).body.models,
      [],
    );
    const aside = [...Deno.readDirSync(dir.path)].filter((e) =>
      e.name.startsWith("registry.json.bad-")
    );
    assert.equal(aside.length, 1, "the damaged file is kept for a look");
  } finally {
    await agent.stop();
  }
});

/** The registry's models on `agent`, by id → version (the live ones). */
async function models(agent: AgentProcess): Promise<Record<string, string>> {
  const { body } = await call(agent, "/v1/registry/models", agent.adminToken());
  return Object.fromEntries(
    body.models.map((m: { model_id: string; version: string }) => [m.model_id, m.version]),
  );
}

Deno.test("registry across 3 agents: seen on C within seconds; B back after a partition converges, through C when A is down; forgeries refused", async () => {
  await using dir = await tempDir();
  const flags = ["--set", "mesh.mdns=false"];
  const a = await startAgent(join(dir.path, "a"), flags);
  let b = await startAgent(join(dir.path, "b"), [...flags, "--bootstrap", a.meshAddrs[0]!]);
  const c = await startAgent(join(dir.path, "c"), [
    ...flags,
    "--bootstrap",
    a.meshAddrs[0]!,
    "--bootstrap",
    b.meshAddrs[0]!,
  ]);
  const stopped = new Set<AgentProcess>();
  try {
    for (const agent of [a, b, c]) {
      await eventually("mesh formed", async () => (await peersOf(agent)).length >= 2);
    }
    const posted = performance.now();
    for (const id of ["keep", "drop"]) {
      assert.equal(
        (await call(a, "/v1/registry/models", a.adminToken(), "POST", model(id))).status,
        201,
      );
    }
    await eventually("C sees A's entries", async () => {
      const seen = await models(c);
      return seen.keep && seen.drop || undefined;
    });
    console.log(`  registered on A → seen on C: ${(performance.now() - posted).toFixed(0)} ms`);
    // an entry is its owner's: C may not change it
    const refused = await call(c, "/v1/registry/models/keep", c.adminToken(), "PUT", model("keep"));
    assert.equal(refused.status, 403);

    await b.stop();
    stopped.add(b);
    await call(
      a,
      "/v1/registry/models/keep",
      a.adminToken(),
      "PUT",
      model("keep", { version: "2.0.0" }),
    );
    await call(a, "/v1/registry/models/drop", a.adminToken(), "DELETE");
    await eventually("C has the update and the delete", async () => {
      const seen = await models(c);
      return seen.keep === "2.0.0" && seen.drop === undefined || undefined;
    });
    await a.stop();
    stopped.add(a);

    // B comes back knowing only C, which never was the owner of anything
    const healed = performance.now();
    b = await startAgent(join(dir.path, "b"), [...flags, "--bootstrap", c.meshAddrs[0]!]);
    stopped.delete(b);
    await eventually("B converges through C", async () => {
      const seen = await models(b);
      return seen.keep === "2.0.0" && seen.drop === undefined || undefined;
    });
    console.log(
      `  B restarted → converged through C: ${(performance.now() - healed).toFixed(0)} ms`,
    );

    // a document that names A as its owner but is signed by someone else is refused
    await using mallory = await startTestPeer({ dial: c.meshAddrs[0]! });
    const owner = (await call(c, "/v1/registry/models/keep", c.adminToken())).body.owner_id;
    const forged = await sealEnvelope(
      "registry_entry",
      {
        kind: "model",
        id: "keep",
        owner_id: owner,
        revision: 99,
        created_at: new Date().toISOString(),
        updated_at: new Date().toISOString(),
        deleted: false,
        entry: { ...model("keep", { version: "6.6.6" }) } as never,
      },
      mallory.privateKey,
      mallory.peerId,
    );
    await mallory.converse("/loam/registry-sync/1", [
      { send: { digest: [] } },
      { receive: true },
      { send: { documents: [new TextDecoder().decode(forged)] } },
    ]);
    await eventually("the forgery counted", async () => {
      const res = await c.request("/metrics", { token: c.adminToken() });
      const text = await res.text();
      return /loam_registry_rejected_total\{reason="not_owner"\} 1/.test(text) || undefined;
    });
    assert.equal((await models(c)).keep, "2.0.0");
  } finally {
    for (const agent of [a, b, c]) if (!stopped.has(agent)) await agent.stop();
  }
});

Deno.test("loam deploy --model: the registry's entry and manifest become a signed directive; a wrong @version is refused", async () => {
  await using dir = await tempDir();
  const gguf = buildTinyGguf(1);
  await using http = startBlobServer({ "/tiny.gguf": { body: gguf } });
  const key = join(dir.path, "c2.key");
  const c2 = JSON.parse((await runLoam(["keys", "generate", "--out", key, "--json"])).stdout)
    .peer_id;
  const agent = await startAgent(join(dir.path, "a"), [
    "--set",
    `mesh.trusted_issuers=${c2}`,
    "--set",
    "mesh.mdns=false",
  ], { env: { LOAM_INFERENCE_THREADS: "1" } });
  try {
    const entry = model("tiny-llama", {
      quantization: "GGUF",
      manifest: {
        model_id: "tiny-llama",
        format: "Gguf",
        version: "1.0.0",
        sha256: sha256Hex(gguf),
        size_bytes: gguf.length,
        download_url: http.url("/tiny.gguf"),
      },
    });
    assert.equal(
      (await call(agent, "/v1/registry/models", agent.adminToken(), "POST", entry)).status,
      201,
    );
    const deploy = (spec: string) =>
      runLoam([
        "deploy",
        "--model",
        spec,
        "--data-dir",
        agent.dataDir,
        "--key",
        key,
        "--bootstrap",
        agent.meshAddrs[0]!,
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--id",
        "from-registry",
        "--watch",
        "--expect",
        "1",
        "--timeout",
        "60",
      ], { timeoutMs: 90_000 });
    const wrong = await deploy("tiny-llama@9.9.9");
    assert.equal(wrong.code, 2, wrong.stderr);
    assert.match(wrong.stderr, /the registry has tiny-llama 1\.0\.0, not 9\.9\.9/);
    const done = await deploy("tiny-llama@1.0.0");
    assert.equal(done.code, 0, `${done.stdout}\n${done.stderr}`);
    const record = await settledDeployment(agent, "from-registry");
    assert.equal(record.state, "active", record.error_message);
    assert.equal(record.directive.artifact.artifact_type.type, "gguf_model");
    assert.equal(record.directive.manifest.model_id, "tiny-llama");
  } finally {
    await agent.stop();
  }
});
