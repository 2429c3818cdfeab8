import assert from "node:assert/strict";
import { join } from "node:path";
import { type AgentProcess, startAgent, tempDir } from "./harness.ts";
import { eventually } from "./mesh_helpers.ts";
import { postArtifact, settledDeployment } from "./deploy_helpers.ts";
import { type BlobServer, startBlobServer } from "../fixtures/blob_server.ts";

const FIXTURES = new URL("../fixtures/wasm/", import.meta.url);
const MODULES = ["hello", "files", "env", "spin"] as const;

async function serveModules(): Promise<{ http: BlobServer; bytes: Record<string, Uint8Array> }> {
  const bytes: Record<string, Uint8Array> = {};
  for (const name of MODULES) bytes[name] = await Deno.readFile(new URL(`${name}.wasm`, FIXTURES));
  const http = startBlobServer(
    Object.fromEntries(MODULES.map((m) => [`/${m}.wasm`, { body: bytes[m]! }])),
  );
  return { http, bytes };
}

async function post(
  agent: AgentProcess,
  id: string,
  module: Uint8Array,
  url: string,
  capabilities: string[],
  config: Record<string, unknown> = {},
) {
  return await postArtifact(agent, id, module, url, {
    type: "wasm_module",
    wasi_capabilities: capabilities,
  }, { config });
}

/** The instance once its module has ended, and its output lines. */
async function finished(agent: AgentProcess, instance: string) {
  const view = await eventually(`${instance} finished`, async () => {
    const res = await agent.request(`/v1/instances/${instance}`, { token: agent.adminToken() });
    const body = await res.json();
    return ["exited", "killed"].includes(body.state) ? body : undefined;
  }, 20_000);
  const logs = await (await agent.request(`/v1/instances/${instance}/logs`, {
    token: agent.adminToken(),
  })).json();
  return { view, lines: logs.lines.map((l: { line: string }) => l.line) as string[] };
}

Deno.test("WASM modules run with exactly their capabilities: args, env, stdout, exit codes", async () => {
  await using dir = await tempDir();
  const { http, bytes } = await serveModules();
  await using _http = http;
  const agent = await startAgent(dir.path, [], { env: { AGENT_SECRET: "hunter2" } });
  try {
    const hello = await post(agent, "hello-1", bytes.hello!, http.url("/hello.wasm"), [
      "args",
      "stdout",
      "stderr",
      "env:GREETING",
    ], { args: ["world"], env: { GREETING: "hi" } });
    assert.equal(hello.status, 202, await hello.text());
    assert.equal((await settledDeployment(agent, "hello-1")).state, "active");
    const { view, lines } = await finished(agent, "wasm-hello-1");
    assert.equal(view.exit_code, 0);
    assert.equal(view.adapter, "wasm_module");
    for (const line of ["hello from wasm", "argv[1]=world", "GREETING=hi", "to stderr"]) {
      assert.ok(lines.includes(line), `${line} in ${lines}`);
    }

    // only declared variables reach the module, never the agent's own environment
    await post(agent, "env-1", bytes.env!, http.url("/env.wasm"), ["stdout", "env:A"], {
      env: { A: "1" },
    });
    assert.equal((await settledDeployment(agent, "env-1")).state, "active");
    const env = await finished(agent, "wasm-env-1");
    assert.deepEqual(env.lines, ["A=1"]);

    // a module that fails at once fails its deployment with its code and output
    await post(agent, "hello-fail", bytes.hello!, http.url("/hello.wasm"), ["args", "stdout"], {
      args: ["fail"],
    });
    const failed = await settledDeployment(agent, "hello-fail");
    assert.equal(failed.state, "failed");
    assert.match(failed.error_message, /module exited with code 3: hello from wasm/);

    // undeclared env in the config, unknown capabilities, and paths going up are refused
    await post(agent, "env-2", bytes.env!, http.url("/env.wasm"), ["stdout"], { env: { B: "2" } });
    assert.match(
      (await settledDeployment(agent, "env-2")).error_message,
      /config.env.B is not granted/,
    );
    for (const capability of ["net:connect", "fs:read:../etc"]) {
      const res = await post(agent, "bad-cap", bytes.env!, http.url("/env.wasm"), [capability]);
      assert.equal(res.status, 400);
      assert.match((await res.json()).error.message, /unknown WASI capability|may not go up/);
    }
  } finally {
    await agent.stop();
  }
});

Deno.test("a WASM module cannot leave its preopens or write a read-only grant", async () => {
  await using dir = await tempDir();
  const { http, bytes } = await serveModules();
  await using _http = http;
  const agent = await startAgent(dir.path);
  try {
    // the instance dir is known in advance: put its input, a secret beside it, and a symlink out
    const instance = join(dir.path, "instances", "wasm-files-1");
    await Deno.mkdir(join(instance, "data"), { recursive: true });
    await Deno.writeTextFile(join(instance, "data", "in.txt"), "loam reads this\n");
    await Deno.writeTextFile(join(instance, "secret.txt"), "not for the module\n");
    await Deno.symlink("/etc/passwd", join(instance, "data", "link"));

    await post(agent, "files-1", bytes.files!, http.url("/files.wasm"), [
      "fs:read:data",
      "fs:write:out",
      "stdout",
    ]);
    assert.equal((await settledDeployment(agent, "files-1")).state, "active");
    const { view, lines } = await finished(agent, "wasm-files-1");
    assert.equal(view.exit_code, 0, lines.join("\n"));
    assert.equal(
      await Deno.readTextFile(join(instance, "out", "result.txt")),
      "LOAM READS THIS\n",
    );
    for (const path of ["../secret.txt", "data/../../secret.txt", "/etc/passwd", "data/link"]) {
      assert.ok(lines.some((l) => l.startsWith(`${path}: DENIED`)), `${path}: ${lines}`);
    }
    assert.ok(lines.some((l) => l.startsWith("data/written.txt: WRITE DENIED")), `${lines}`);
    assert.equal(await Deno.stat(join(instance, "data", "written.txt")).catch(() => null), null);
  } finally {
    await agent.stop();
  }
});

Deno.test("a busy-looping WASM module is killed at its wall-time cap", async () => {
  await using dir = await tempDir();
  const { http, bytes } = await serveModules();
  await using _http = http;
  const agent = await startAgent(dir.path);
  try {
    await post(agent, "spin-1", bytes.spin!, http.url("/spin.wasm"), ["stdout"], {
      timeout_seconds: 2,
    });
    assert.equal((await settledDeployment(agent, "spin-1")).state, "active");
    const { view, lines } = await finished(agent, "wasm-spin-1");
    assert.equal(view.state, "killed");
    assert.equal(view.exit_code, 137);
    assert.ok(lines.includes("spinning"));
    assert.ok(lines.includes("killed after 2 s (wall-time cap)"));
  } finally {
    await agent.stop();
  }
});
