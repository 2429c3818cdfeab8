import assert from "node:assert/strict";
import { startAgent, tempDir } from "./harness.ts";
import { postArtifact, settledDeployment } from "./deploy_helpers.ts";
import { startBlobServer } from "../fixtures/blob_server.ts";

/** A program that holds ~8 MiB and sleeps (for 60 s at most). */
const HOLDER = new TextEncoder().encode(
  '#!/bin/sh\nx=$(head -c 8000000 /dev/zero | tr "\\\\0" a)\necho held\nsleep 60\n',
);

const promtool = await new Deno.Command("promtool", {
  args: ["--version"],
  stdout: "null",
  stderr: "null",
})
  .output().then((o) => o.success, () => false);
if (!promtool) {
  console.log("SKIP promtool check: promtool not installed (Debian package prometheus)");
}

Deno.test("/metrics: the agent's process_* figures, per-workload CPU and memory, and promtool accepts it", async () => {
  await using dir = await tempDir();
  await using http = startBlobServer({ "/holder": { body: HOLDER } });
  const agent = await startAgent(dir.path);
  try {
    const type = { type: "native_binary", arch: Deno.build.arch, args: [] };
    const posted = await postArtifact(agent, "hold", HOLDER, http.url("/holder"), type);
    assert.equal(posted.status, 202, await posted.text());
    assert.equal((await settledDeployment(agent, "hold")).state, "active");
    const instance = await (await agent.request("/v1/instances/bin-hold", {
      token: agent.adminToken(),
    })).json();
    assert.ok(instance.memory_bytes > 1_000_000, `memory_bytes ${instance.memory_bytes}`);
    assert.equal(typeof instance.cpu_seconds, "number");
    assert.equal(instance.usage_source, "ps");

    const text = await (await agent.request("/metrics", { token: agent.adminToken() })).text();
    const value = (pattern: RegExp) => Number(text.match(pattern)?.[1] ?? NaN);
    assert.ok(value(/^process_resident_memory_bytes (\S+)$/m) > 10_000_000, "agent RSS");
    assert.ok(value(/^process_cpu_seconds_total (\S+)$/m) > 0, "agent CPU");
    assert.ok(value(/^process_open_fds (\S+)$/m) > 3, "agent open files");
    assert.ok(value(/^process_start_time_seconds (\S+)$/m) > 1_700_000_000);
    assert.ok(
      value(/^loam_instance_memory_bytes\{loam_instance="bin-hold",usage_source="ps"\} (\S+)$/m) >
        1_000_000,
      "the workload's memory",
    );
    assert.match(text, /^loam_instance_cpu_seconds_total\{loam_instance="bin-hold"\} \d/m);
    assert.doesNotMatch(text, /[{,]instance="/, "no label named instance");

    if (promtool) {
      const check = new Deno.Command("promtool", {
        args: ["check", "metrics"],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const writer = check.stdin.getWriter();
      await writer.write(new TextEncoder().encode(text));
      await writer.close();
      const out = await check.output();
      const said = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, `promtool check metrics:\n${said}`);
    }
  } finally {
    await agent.stop();
  }
});
