import assert from "node:assert/strict";
import { startAgent, tempDir } from "./harness.ts";
import { postArtifact, settledDeployment } from "./deploy_helpers.ts";
import { startBlobServer } from "../fixtures/blob_server.ts";

const SERVICE = new TextEncoder().encode("#!/bin/sh\nsleep 30\n");

Deno.test("percent-encoded ids in paths are decoded; a malformed escape is a 400 naming it", async () => {
  await using dir = await tempDir();
  await using http = startBlobServer({ "/svc": { body: SERVICE } });
  const agent = await startAgent(dir.path);
  try {
    const token = agent.adminToken();
    const res = await postArtifact(agent, "a:b", SERVICE, http.url("/svc"), {
      type: "native_binary",
      arch: Deno.build.arch,
      args: [],
    });
    assert.equal(res.status, 202, await res.text());
    assert.equal((await settledDeployment(agent, "a:b")).state, "active");

    const shown = await agent.request("/v1/deployments/a%3Ab", { token });
    assert.equal(shown.status, 200);
    assert.equal((await shown.json()).directive_id, "a:b");
    const deleted = await agent.request("/v1/deployments/a%3Ab", { method: "DELETE", token });
    const body = await deleted.json();
    assert.equal(deleted.status, 200, JSON.stringify(body));
    assert.equal(body.directive_id, "a:b");
    assert.equal(body.state, "rolled_back");

    const bad = await agent.request("/v1/deployments/a%zz", { method: "DELETE", token });
    const error = await bad.json();
    assert.equal(bad.status, 400, JSON.stringify(error));
    assert.equal(error.error.code, "invalid_request");
    assert.match(error.error.message, /"a%zz" is not valid percent-encoding/);
  } finally {
    await agent.stop();
  }
});
