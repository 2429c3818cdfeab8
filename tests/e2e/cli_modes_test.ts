import assert from "node:assert/strict";
import { runLoam, startAgent, tempDir } from "./harness.ts";
import { postArtifact, settledDeployment } from "./deploy_helpers.ts";
import { sha256Hex, startBlobServer } from "../fixtures/blob_server.ts";

const SERVICE = new TextEncoder().encode("#!/bin/sh\necho up\nsleep 30\n");
const FILE = new TextEncoder().encode("a blob fetched by the CLI\n");

async function modes(data: string): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const name of ["", "api", "instances", "blobs", "blobs/sha256", "blobs/partial"]) {
    const mode = (await Deno.stat(`${data}/${name}`)).mode! & 0o7777;
    result[name || "."] = mode.toString(8);
  }
  return result;
}

Deno.test("token, blobs and fetch beside a running agent leave its modes; native deploys still run", async () => {
  await using dir = await tempDir();
  const data = `${dir.path}/data`;
  await using http = startBlobServer({ "/svc": { body: SERVICE }, "/file": { body: FILE } });
  const agent = await startAgent(data);
  try {
    const before = await modes(data);
    // as root, native workloads run as nobody, who must pass through to their instance dirs
    if (Deno.uid() === 0) assert.equal(before["instances"], "711", JSON.stringify(before));

    const token = await runLoam(["token", "create", "--scopes", "status:read", "--data-dir", data]);
    assert.equal(token.code, 0, token.stderr);
    const ls = await runLoam(["blobs", "ls", "--data-dir", data]);
    assert.equal(ls.code, 0, ls.stderr);
    const fetched = await runLoam([
      "fetch",
      http.url("/file"),
      "--sha256",
      sha256Hex(FILE),
      "--data-dir",
      data,
    ]);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.deepEqual(await modes(data), before);

    const res = await postArtifact(agent, "modes-1", SERVICE, http.url("/svc"), {
      type: "native_binary",
      arch: Deno.build.arch,
      args: [],
    });
    assert.equal(res.status, 202, await res.text());
    const record = await settledDeployment(agent, "modes-1");
    assert.equal(record.state, "active", record.error_message);
  } finally {
    await agent.stop();
  }
});
