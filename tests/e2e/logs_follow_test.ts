import assert from "node:assert/strict";
import { startAgent, tempDir } from "./harness.ts";
import { postArtifact, settledDeployment } from "./deploy_helpers.ts";
import { startBlobServer } from "../fixtures/blob_server.ts";

/** A program that counts, one line every 200 ms, for 60 s at most. */
const COUNTER = new TextEncoder().encode(
  '#!/bin/sh\ni=0\nwhile [ $i -lt 300 ]; do echo "tick $i"; sleep 0.2; i=$((i + 1)); done\n',
);

Deno.test("logs -f: a followed native program streams new lines; stopping the agent ends the stream", async () => {
  await using dir = await tempDir();
  await using http = startBlobServer({ "/counter": { body: COUNTER } });
  const agent = await startAgent(dir.path);
  let stopped: Awaited<ReturnType<typeof agent.stop>> | undefined;
  try {
    const type = { type: "native_binary", arch: Deno.build.arch, args: [] };
    const posted = await postArtifact(agent, "count", COUNTER, http.url("/counter"), type);
    assert.equal(posted.status, 202, await posted.text());
    assert.equal((await settledDeployment(agent, "count")).state, "active");
    const response = await agent.request("/v1/instances/bin-count/logs?lines=1", {
      token: agent.adminToken(),
      headers: { accept: "text/event-stream" },
    });
    assert.equal(response.status, 200);
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const ticks = () => [...text.matchAll(/"line":"tick (\d+)"/g)].map((m) => Number(m[1]));
    const deadline = Date.now() + 10_000;
    while (ticks().length < 4 && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    const seen = ticks();
    assert.ok(seen.length >= 4, text);
    // one line of tail, then every new line once, in order
    assert.deepEqual(seen, seen.map((_, i) => seen[0]! + i));
    const started = performance.now();
    stopped = await agent.stop();
    assert.ok(performance.now() - started < 5000, "a follower does not hold up the stop");
    let done = false;
    while (!done) done = (await reader.read().catch(() => ({ done: true }))).done;
  } finally {
    stopped ??= await agent.stop();
  }
  assert.equal(stopped.code, 0, agent.lines.join("\n"));
});
