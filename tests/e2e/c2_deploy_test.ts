import assert from "node:assert/strict";
import { type AgentProcess, runLoam, startAgent, tempDir } from "./harness.ts";
import { eventually, peerIdOf, peersOf } from "./mesh_helpers.ts";
import { sha256Hex, startBlobServer } from "../fixtures/blob_server.ts";

const SERVICE = new TextEncoder().encode(
  '#!/bin/sh\necho "up $LOAM_INSTANCE_ID"\ni=0\nwhile [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done\n',
);

/** Runs on n1 but fails at once on n2 (its instance dir is under the n2 data dir). */
const PICKY = new TextEncoder().encode(
  '#!/bin/sh\ncase "$PWD" in */n2/*) echo "not on this box" >&2; exit 3;; esac\n' +
    "i=0\nwhile [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done\n",
);

async function records(agent: AgentProcess) {
  return (await (await agent.request("/v1/deployments", { token: agent.adminToken() })).json())
    .deployments as {
      directive_id: string;
      state: string;
    }[];
}

Deno.test("loam deploy: C2 signs, formation targeting hits only its members, --watch reports, exit codes", async () => {
  await using dir = await tempDir();
  const key = `${dir.path}/c2.key`;
  const keys = await runLoam(["keys", "generate", "--out", key, "--json"]);
  const c2 = JSON.parse(keys.stdout).peer_id;
  const rogueKey = `${dir.path}/rogue.key`;
  await runLoam(["keys", "generate", "--out", rogueKey]);
  await using http = startBlobServer({ "/svc": { body: SERVICE }, "/picky": { body: PICKY } });
  const trust = ["--set", `mesh.trusted_issuers=${c2}`, "--set", "mesh.advert_interval=1"];
  const n1 = await startAgent(`${dir.path}/n1`, [
    "--node-id",
    "n1",
    "--formation-id",
    "north",
    ...trust,
  ]);
  const boot = ["--bootstrap", n1.meshAddrs[0]!];
  const n2 = await startAgent(`${dir.path}/n2`, [
    "--node-id",
    "n2",
    "--formation-id",
    "north",
    ...boot,
    ...trust,
  ]);
  const s1 = await startAgent(`${dir.path}/s1`, [
    "--node-id",
    "s1",
    "--formation-id",
    "south",
    ...boot,
    ...trust,
  ]);
  const all = [n1, n2, s1];
  try {
    for (const agent of all) {
      await eventually(
        "mesh formed",
        async () => (await peersOf(agent)).filter((p) => p.advert).length >= 2,
      );
    }
    const common = [
      "--key",
      key,
      "--bootstrap",
      n1.meshAddrs[0]!,
      "--listen",
      "/ip4/127.0.0.1/tcp/0",
    ];
    const flags = [
      "--artifact-url",
      http.url("/svc"),
      "--sha256",
      sha256Hex(SERVICE),
      "--size",
      String(SERVICE.length),
      "--type",
      "native_binary",
      "--scope",
      "formation:north",
      "--quiet-seconds",
      "2",
      "--timeout",
      "60",
    ];
    const ok = await runLoam(["deploy", ...common, ...flags, "--id", "north-svc", "--watch"]);
    assert.equal(ok.code, 0, ok.stderr);
    // one line per node: node id, the last 8 characters of its peer id, state, progress
    const [tail1, tail2] = [n1, n2].map((a) => peerIdOf(a).slice(-8));
    assert.match(ok.stdout, new RegExp(`^n1\\s+${tail1}\\s+active\\s+100%$`, "m"));
    assert.match(ok.stdout, new RegExp(`^n2\\s+${tail2}\\s+active\\s+100%$`, "m"));
    assert.doesNotMatch(ok.stdout, /^s1/m);
    assert.match(ok.stderr, /2 of 2 nodes active/);
    assert.deepEqual((await records(s1)).map((r) => r.directive_id), [], "south was not targeted");

    const wrong = flags.map((f) => f === sha256Hex(SERVICE) ? "0".repeat(64) : f);
    const bad = await runLoam(["deploy", ...common, ...wrong, "--id", "bad-hash", "--watch"]);
    assert.equal(bad.code, 1);
    assert.match(
      bad.stdout,
      /^n1\s+\w{8}\s+failed\s+\d+%\s+cannot fetch sha256:0{64}: .*hash mismatch/m,
    );
    assert.match(bad.stderr, /0 of 2 nodes active/);

    const picky = flags.map((f) =>
      f === sha256Hex(SERVICE)
        ? sha256Hex(PICKY)
        : f === String(SERVICE.length)
        ? String(PICKY.length)
        : f === http.url("/svc")
        ? http.url("/picky")
        : f
    );
    const half = await runLoam([
      "deploy",
      ...common,
      ...picky,
      "--id",
      "picky",
      "--rollback-threshold",
      "75",
    ]);
    assert.equal(half.code, 1, half.stderr);
    assert.match(half.stderr, /1 of 2 nodes active/);
    assert.match(
      half.stderr,
      /published rollback of picky: 1 of 2 nodes active, below the 75% threshold/,
    );
    assert.match(
      half.stdout,
      /^n1\s+\w{8}\s+rolled_back\s+100%\s+rolled back by 12D3KooW\w+: 1 of 2/m,
    );
    assert.match(half.stderr, /1 nodes rolled back/);
    const n1Record = (await records(n1)).find((r) => r.directive_id === "picky");
    assert.equal(n1Record?.state, "rolled_back");
    const instances = await (await n1.request("/v1/instances", { token: n1.adminToken() })).json();
    assert.ok(
      !instances.instances.some((i: { directive_id: string }) => i.directive_id === "picky"),
    );

    const rogue = await runLoam([
      "deploy",
      "--key",
      rogueKey,
      ...common.slice(2),
      ...flags,
      "--id",
      "rogue",
      "--timeout",
      "4",
      "--watch",
    ]);
    assert.equal(rogue.code, 1);
    assert.match(rogue.stderr, /gave up watching after 4 s/);
    for (const agent of all) {
      assert.ok(
        !(await records(agent)).some((r) => r.directive_id === "rogue"),
        "untrusted directive ignored",
      );
    }
  } finally {
    await Promise.all(all.map((a) => a.stop()));
  }
});
