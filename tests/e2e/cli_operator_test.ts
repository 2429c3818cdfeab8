import assert from "node:assert/strict";
import { runLoam, spawnLoam, startAgent, tempDir } from "./harness.ts";
import { postArtifact, settledDeployment } from "./deploy_helpers.ts";
import { startBlobServer } from "../fixtures/blob_server.ts";

/** A program that says hello on both streams, then ticks every 200 ms (60 s at most). */
const TALKER = new TextEncoder().encode(
  '#!/bin/sh\necho "hello out"\necho "hello err" >&2\ni=0\nwhile [ $i -lt 300 ]; do echo "tick $i"; sleep 0.2; i=$((i + 1)); done\n',
);

Deno.test("operator CLI: deployments, instances, logs (and -f), peers, status workloads, with --json and exit codes", async () => {
  await using dir = await tempDir();
  await using http = startBlobServer({ "/talker": { body: TALKER } });
  const agent = await startAgent(dir.path, ["--node-id", "edge-cli"]);
  const loam = (...args: string[]) => runLoam([...args, "--data-dir", dir.path]);
  try {
    const type = { type: "native_binary", arch: Deno.build.arch, args: [] };
    const posted = await postArtifact(agent, "talk", TALKER, http.url("/talker"), type);
    assert.equal(posted.status, 202, await posted.text());
    assert.equal((await settledDeployment(agent, "talk")).state, "active");

    const ls = await loam("deployments");
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^ID\s+STATE\s+PROGRESS\s+TYPE\s+ARTIFACT\s+INSTANCE$/m);
    assert.match(ls.stdout, /^talk\s+active\s+100%\s+native_binary\s+\S+\s+bin-talk$/m);
    const json = JSON.parse((await loam("deployments", "ls", "--json")).stdout);
    assert.equal(json.deployments[0].directive_id, "talk");
    const show = await loam("deployments", "show", "talk");
    assert.match(show.stdout, /^state\s+active \(100%\)$/m);
    assert.match(show.stdout, /^\s+\S+\s+pending$/m);

    const instances = await loam("instances");
    assert.match(instances.stdout, /^ID\s+ADAPTER\s+STATE\s+PROVIDER\s+MEMORY\s+STARTED$/m);
    assert.match(
      instances.stdout,
      /^bin-talk\s+native_binary\s+running\s+process\s+\d+\.\d MiB\s+\S+$/m,
    );
    const one = await loam("instances", "show", "bin-talk");
    assert.match(one.stdout, /^pid\s+\d+$/m);
    assert.equal(
      JSON.parse((await loam("instances", "show", "bin-talk", "--json")).stdout).adapter,
      "native_binary",
    );

    const logs = await loam("logs", "bin-talk", "--tail", "500");
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /^hello out$/m);
    assert.match(logs.stderr, /^hello err$/m, "stderr lines go to stderr");
    assert.doesNotMatch(logs.stdout, /hello err/);
    const stamped = await loam("logs", "bin-talk", "--tail", "1", "--timestamps");
    assert.match(stamped.stdout, /^\d{4}-\d{2}-\d{2}T\S+ tick \d+$/m);

    // -f prints new lines as they come, until stopped
    const follower = spawnLoam(["logs", "bin-talk", "-f", "--tail", "1", "--data-dir", dir.path]);
    const reader = follower.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let followed = "";
    const deadline = Date.now() + 10_000;
    while ((followed.match(/tick/g) ?? []).length < 4 && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      followed += value;
    }
    follower.kill("SIGTERM");
    await reader.cancel();
    await follower.stderr.cancel();
    await follower.status;
    const ticks = [...followed.matchAll(/^tick (\d+)$/gm)].map((m) => Number(m[1]));
    assert.ok(ticks.length >= 4, followed);
    assert.deepEqual(ticks, ticks.map((_, i) => ticks[0]! + i), "every line once, in order");

    const peers = await loam("peers", "--json");
    assert.equal(peers.code, 0, peers.stderr);
    assert.deepEqual(JSON.parse(peers.stdout).peers, []);
    assert.match(
      (await loam("peers")).stdout,
      /^PEER\s+NODE\s+CONNECTED\s+LATENCY\s+VERSION\s+ARCH\n\(none\)$/m,
    );

    const status = await loam("status");
    assert.match(status.stdout, /^deployments\s+1 active$/m);
    assert.match(status.stdout, /^instances\s+bin-talk \(native_binary, running\)$/m);

    // errors: a missing deployment is the agent's 404 (exit 1); a wrong action a usage error (2)
    const missing = await loam("deployments", "show", "nope");
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      /^loam: agent answered 404 for \/v1\/deployments\/nope \(not_found: no deployment nope\)$/m,
    );
    const bogus = await loam("deployments", "frob");
    assert.equal(bogus.code, 2);
    assert.match(bogus.stderr, /unknown action "frob" \(ls, show, activate, rm\)/);
    assert.equal((await loam("logs")).code, 2);
    assert.equal((await loam("deployments", "show")).code, 2);
    assert.equal((await loam("logs", "bin-talk", "--since", "yesterday")).code, 1);

    const removed = await loam("deployments", "rm", "talk");
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout, /^state\s+rolled_back/m);
    const gone = await loam("deployments", "rm", "talk");
    assert.match(gone.stdout, /^talk: record removed$/m);
  } finally {
    await agent.stop();
  }
});

Deno.test("loam completion prints bash, zsh and fish scripts; bash and zsh parse them", async () => {
  for (const shell of ["bash", "zsh", "fish"]) {
    const res = await runLoam(["completion", shell]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /deployments/);
    assert.match(res.stdout, /activate/);
  }
  const bash = await runLoam(["completion", "bash"]);
  const check = await new Deno.Command("sh", {
    args: ["-c", `command -v bash >/dev/null || exit 0; bash -n <<'EOF'\n${bash.stdout}\nEOF`],
  }).output();
  assert.equal(check.code, 0, new TextDecoder().decode(check.stderr));
  const wrong = await runLoam(["completion", "tcsh"]);
  assert.equal(wrong.code, 2);
  assert.match(wrong.stderr, /unknown shell "tcsh" \(bash, zsh, fish\)/);
});
