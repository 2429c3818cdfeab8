/**
 * The fleet updates loam itself (`loam_agent`): agents run from a built loam file, as by hand
 * (no systemd: the file's own run loop restarts them). Three builds told apart by version: the
 * test file, v2 (`deno task build --version`), and a v3 whose agent exits at start (v2's
 * payload with the agent replaced, packed by the same packer). x86_64 only (the builds are).
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type AgentProcess,
  descendantsOf,
  freePort,
  killNow,
  runLoam,
  startAgent,
  tempDir,
} from "./harness.ts";
import { eventually, peersOf } from "./mesh_helpers.ts";
import { postArtifact, settledDeployment } from "./deploy_helpers.ts";
import { startBlobServer } from "../fixtures/blob_server.ts";
import { shippedFile } from "../fixtures/shipped_file.ts";
import { brokenLoamFile } from "../fixtures/broken_loam_file.ts";
import { sha256OfFile } from "../../tasks/sfx_payload.ts";
import { extractions } from "../../tasks/sfx_checks.ts";

const V2 = "99.2.0";
const V3 = "99.3.0";

const skipReason = Deno.build.target !== "x86_64-unknown-linux-gnu"
  ? `builds x86_64 loam files; this host is ${Deno.build.target}`
  : undefined;
if (skipReason) console.log(`SKIP self-update tests: ${skipReason}`);

/** Every test here runs built files, whose agents outlive a test step or two. */
const BUILT_FILES = {
  ignore: skipReason !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
};

let broken: Promise<string> | undefined;

/** The v3 that exits at start, made once from v2 (in a dir removed when the tests end). */
function brokenV3(): Promise<string> {
  broken ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "loam-v3-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    const file = join(dir, "loam-v3");
    await brokenLoamFile(await shippedFile(V2), V3, file);
    return file;
  })();
  return broken;
}

/** An agent on fixed ports (a restart keeps its addresses), its own runtime dir, the base file. */
function fleetAgent(root: string, name: string, file: string, extra: string[]) {
  const api = freePort();
  const mesh = freePort();
  return startAgent(join(root, name), [
    "--node-id",
    name,
    "--api-listen",
    `127.0.0.1:${api}`,
    "--mesh-listen",
    `/ip4/127.0.0.1/tcp/${mesh}`,
    "--set",
    "mesh.advert_interval=1",
    "--set",
    "mesh.mdns=false",
    ...extra,
  ], { binary: file, env: { LOAM_RUNTIME_DIR: join(root, `${name}-runtime`) } });
}

/** A native service for the hand-over to keep alive (3 minutes at most). */
const SERVICE = new TextEncoder().encode(
  "#!/bin/sh\ni=0\nwhile [ $i -lt 360 ]; do echo beat $i; sleep 0.5; i=$((i + 1)); done\n",
);

/** The pid and state of an instance, as the agent's API shows them. */
async function instanceOf(
  agent: AgentProcess,
  id: string,
): Promise<{ pid: number; state: string }> {
  const res = await agent.request(`/v1/instances/${id}`, { token: agent.adminToken() });
  return await res.json();
}

async function versionOf(agent: AgentProcess): Promise<string> {
  const res = await agent.request("/v1/status", { token: agent.adminToken() });
  return (await res.json()).version;
}

/** A directive file for the loam file at `path` (served at `url`). */
async function directiveFile(dir: string, id: string, path: string, url: string, version: string) {
  const file = join(dir, `${id}.json`);
  await Deno.writeTextFile(
    file,
    JSON.stringify({
      directive_id: id,
      scope: { type: "capability", arch: "x86_64" },
      artifact: {
        blob_hash: `sha256:${await sha256OfFile(path)}`,
        size_bytes: (await Deno.stat(path)).size,
        urls: [url],
        artifact_type: { type: "loam_agent", version },
      },
      options: { timeout_seconds: 90 },
    }),
  );
  return file;
}

Deno.test({
  name: "self-update: three agents take v2 from the fleet; a v3 that exits at start rolls " +
    "back to v2 with the reason; a damaged file is refused before any swap",
  ...BUILT_FILES,
  fn: async () => {
    await using dir = await tempDir();
    const base = await shippedFile();
    const v2 = await shippedFile(V2);
    const v3 = await brokenV3();
    const damaged = join(dir.path, "loam-damaged");
    const bytes = await Deno.readFile(v2);
    await Deno.writeFile(damaged, bytes.subarray(0, bytes.length - 1_000_000));
    const size = async (p: string) => (await Deno.stat(p)).size;
    await using http = startBlobServer({
      "/v2": { body: { file: v2, size: await size(v2) } },
      "/v3": { body: { file: v3, size: await size(v3) } },
      "/damaged": { body: { file: damaged, size: await size(damaged) } },
      "/svc": { body: SERVICE },
    });
    const key = join(dir.path, "c2.key");
    const c2 = JSON.parse((await runLoam(["keys", "generate", "--out", key, "--json"])).stdout)
      .peer_id;
    const trust = ["--set", `mesh.trusted_issuers=${c2}`];
    const a = await fleetAgent(dir.path, "a", base, trust);
    const b = await fleetAgent(dir.path, "b", base, [...trust, "--bootstrap", a.meshAddrs[0]!]);
    const c = await fleetAgent(dir.path, "c", base, [
      ...trust,
      "--bootstrap",
      a.meshAddrs[0]!,
      "--bootstrap",
      b.meshAddrs[0]!,
    ]);
    const all = [a, b, c];
    try {
      const first = await versionOf(a);
      for (const agent of all) {
        await eventually("mesh formed", async () => (await peersOf(agent)).length >= 2);
      }
      const posted = await postArtifact(a, "svc", SERVICE, http.url("/svc"), {
        type: "native_binary",
        arch: Deno.build.arch,
      });
      assert.equal(posted.status, 202);
      assert.equal((await settledDeployment(a, "svc")).state, "active");
      const program = (await instanceOf(a, "bin-svc")).pid;
      /** The program a runs is the one from before the updates, adopted. */
      const sameProgram = async (after: string) => {
        const now = await instanceOf(a, "bin-svc");
        assert.deepEqual([now.pid, now.state], [program, "running"], `after ${after}`);
        assert.ok(
          a.logs.some((l) => l.msg === "adopted a program left running" && l.pid === program),
        );
      };
      const deploy = (...what: string[]) =>
        runLoam([
          "deploy",
          ...what,
          "--key",
          key,
          "--bootstrap",
          a.meshAddrs[0]!,
          "--listen",
          "/ip4/127.0.0.1/tcp/0",
          "--watch",
          "--expect",
          "3",
          "--timeout",
          "150",
        ], { timeoutMs: 170_000 });

      const started = performance.now();
      const up = await deploy(
        "--artifact-url",
        http.url("/v2"),
        "--sha256",
        await sha256OfFile(v2),
        "--size",
        String((await Deno.stat(v2)).size),
        "--type",
        "loam_agent",
        "--agent-version",
        V2,
        "--id",
        "up-v2",
      );
      const seconds = (performance.now() - started) / 1000;
      assert.equal(up.code, 0, `${up.stdout}\n${up.stderr}`);
      console.log(`  3 agents ${first} → ${V2}: loam deploy --watch took ${seconds.toFixed(1)} s`);
      for (const node of ["a", "b", "c"]) {
        // --watch shows each node's version as it changes
        assert.match(up.stdout, new RegExp(`^${node}\\s+\\w{8} version (\\S+ → )?${V2}$`, "m"));
      }
      for (const agent of all) {
        assert.equal(await versionOf(agent), V2);
        const record = await settledDeployment(agent, "up-v2");
        assert.equal(record.state, "active");
        assert.equal(record.instance_id, `loam-agent-${V2}`);
        assert.equal(await Deno.readLink(join(agent.dataDir, "bin", "current")), V2);
        assert.equal(await Deno.readLink(join(agent.dataDir, "bin", "previous")), first);
        await assert.rejects(Deno.stat(join(agent.dataDir, "bin", "trial")), Deno.errors.NotFound);
      }
      await sameProgram(`the update to ${V2}`);
      await eventually("peers advertise v2", async () => {
        const peers = await peersOf(a);
        return peers.length >= 2 && peers.every((p) => p.advert?.version === V2) || undefined;
      });

      const rollingBack = performance.now();
      const back = await deploy(await directiveFile(dir.path, "up-v3", v3, http.url("/v3"), V3));
      const backSeconds = (performance.now() - rollingBack) / 1000;
      console.log(`  3 agents ${V2} → ${V3} (exits at start) → ${V2}: ${backSeconds.toFixed(1)} s`);
      assert.equal(back.code, 1, `${back.stdout}\n${back.stderr}`);
      for (const agent of all) {
        const record = await settledDeployment(agent, "up-v3", ["rolled_back", "failed", "active"]);
        assert.equal(record.state, "rolled_back", JSON.stringify(record));
        assert.match(
          record.error_message,
          new RegExp(
            `loam ${V3} was rolled back: crashed at start: started 3 times .*running ${V2} again`,
          ),
        );
        assert.equal(await versionOf(agent), V2);
        assert.equal(await Deno.readLink(join(agent.dataDir, "bin", "current")), V2);
      }
      assert.match(back.stdout, /rolled_back/);
      await sameProgram(`the rollback from ${V3}`);

      const refused = await deploy(
        await directiveFile(dir.path, "up-damaged", damaged, http.url("/damaged"), "99.3.1"),
      );
      assert.equal(refused.code, 1);
      for (const agent of all) {
        const record = await settledDeployment(agent, "up-damaged");
        assert.equal(record.state, "failed");
        assert.match(record.error_message, /loam 99\.3\.1 refused: the file is damaged/);
        assert.equal(await versionOf(agent), V2);
      }
    } catch (err) {
      for (const agent of all) {
        console.log(`--- ${agent.dataDir}\n${agent.lines.slice(-15).join("\n")}`);
      }
      throw err;
    } finally {
      await Promise.all(all.map((agent) => agent.stop()));
    }
  },
});

Deno.test({
  name: "self-update: killed with -9 in the middle of the swap, the node comes back on one " +
    "valid version and the update completes",
  ...BUILT_FILES,
  fn: async () => {
    await using dir = await tempDir();
    const base = await shippedFile();
    const v2 = await shippedFile(V2);
    await using http = startBlobServer({
      "/v2": { body: { file: v2, size: (await Deno.stat(v2)).size } },
    });
    const first = await fleetAgent(dir.path, "a", base, []);
    const bin = join(first.dataDir, "bin");
    let again: AgentProcess | undefined;
    try {
      const res = await first.request("/v1/deployments", {
        method: "POST",
        token: first.adminToken(),
        body: JSON.stringify({
          directive_id: "up-v2",
          scope: { type: "broadcast" },
          artifact: {
            blob_hash: `sha256:${await sha256OfFile(v2)}`,
            size_bytes: (await Deno.stat(v2)).size,
            urls: [http.url("/v2")],
            artifact_type: { type: "loam_agent", version: V2 },
          },
        }),
      });
      assert.equal(res.status, 202, await res.text());
      await first.waitForLog((l) => l.msg === "handing over to a new version", 60_000);
      // a power cut: the run loop, the agent and whatever they started, at once
      killNow([first.pid, ...descendantsOf(first.pid)]);
      await first.stop("SIGKILL");
      const current = await Deno.readLink(join(bin, "current")).catch(() => undefined);
      if (current !== undefined) {
        const info = await runLoam(["--payload-info"], { binary: join(bin, current, "loam") });
        assert.equal(JSON.parse(info.stdout).version, current, "current names a whole file");
      }
      again = await fleetAgent(dir.path, "a", base, []);
      const record = await settledDeployment(
        again,
        "up-v2",
        ["active", "failed", "rolled_back"],
        60_000,
      );
      assert.equal(record.state, "active", JSON.stringify(record));
      assert.equal(await versionOf(again), V2);
      assert.equal(await Deno.readLink(join(bin, "current")), V2);
      await assert.rejects(Deno.stat(join(bin, "trial")), Deno.errors.NotFound);
    } finally {
      await first.stop();
      await again?.stop();
    }
  },
});

Deno.test({
  name: "self-update: agents sharing one runtime dir: extracting newer versions never removes " +
    "the one an agent still runs from",
  ...BUILT_FILES,
  fn: async () => {
    await using dir = await tempDir();
    const base = await shippedFile();
    const runtime = join(dir.path, "shared-runtime");
    const env = { LOAM_RUNTIME_DIR: runtime };
    const agent = await startAgent(join(dir.path, "x"), [], { binary: base, env });
    try {
      const info = await runLoam(["--payload-info"], { binary: base });
      const own = join(runtime, JSON.parse(info.stdout).payload_sha256);
      // two newer files extract beside it: the oldest extraction would go, but it is in use
      await runLoam(["version"], { binary: await shippedFile(V2), env, timeoutMs: 120_000 });
      await runLoam(["version"], { binary: await brokenV3(), env, timeoutMs: 120_000 });
      assert.equal((await extractions(runtime)).length, 3);
      assert.ok((await Deno.stat(join(own, "deno"))).isFile, "the running agent's runtime stays");
      assert.equal((await agent.request("/v1/status", { token: agent.adminToken() })).status, 200);
    } finally {
      await agent.stop();
    }
  },
});
