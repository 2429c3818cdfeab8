import assert from "node:assert/strict";
import { type AgentProcess, startAgent } from "./harness.ts";
import { postArtifact, settledDeployment } from "./deploy_helpers.ts";
import { eventually } from "./mesh_helpers.ts";
import { randomBytes, sha256Hex, startBlobServer } from "../fixtures/blob_server.ts";
import { fillDisk, smallDisk, tmpfsSkipReason } from "../fixtures/tmpfs.ts";
import { sleep } from "../../src/system/sleep.ts";

const skipReason = await tmpfsSkipReason();
if (skipReason) console.log(`SKIP disk-full deployment tests: ${skipReason}`);

/** A deployment that stops at `ready`: its download is what these tests are about. */
const DOWNLOAD_ONLY = { options: { auto_activate: false } };
const CONFIG = { type: "config_package", target_path: "/nonexistent/loam-test" };

/** Bytes of blob `hex` downloaded so far (its partial). */
async function bytesDownloaded(agent: AgentProcess, hex: string): Promise<number> {
  const report = await (await agent.request("/v1/blobs", { token: agent.adminToken() })).json();
  return report.partials.find((p: { sha256: string }) => p.sha256 === hex)?.bytes ?? 0;
}

Deno.test({
  name: "a disk that fills mid-download fails the deployment, the agent stays up and starts again",
  ignore: skipReason !== undefined,
  async fn() {
    await using disk = await smallDisk("24m");
    const data = disk.path;
    const body = randomBytes(8 * 1024 * 1024);
    await using server = startBlobServer({
      "/big": { body, bytesPerSecond: 2 * 1024 * 1024 },
      "/small": { body: randomBytes(4096) },
    });
    const flags = ["--set", "blobs.disk_reserve_mb=0"];
    let agent = await startAgent(data, flags);
    const orphan = `${data}/blobs/partial/${"e".repeat(64)}`;
    await Deno.writeFile(orphan, randomBytes(1024 * 1024));
    try {
      const res = await postArtifact(
        agent,
        "big",
        body,
        server.url("/big"),
        CONFIG,
        DOWNLOAD_ONLY,
      );
      assert.equal(res.status, 202, await res.text());
      await eventually(
        "the download is under way",
        async () => await bytesDownloaded(agent, sha256Hex(body)) > 1024 * 1024,
      );
      await fillDisk(`${data}/filler`);
      const failed = await settledDeployment(agent, "big", ["failed", "ready"]);
      assert.equal(failed.state, "failed");
      assert.match(failed.error_message, /: disk full|disk full while writing/);
      assert.equal((await agent.request("/livez")).status, 200);

      // every write path: a directive that arrives on the full disk fails, saying why
      const small = randomBytes(4096);
      server.routes["/small"]!.body = small;
      const late = await postArtifact(agent, "late", small, server.url("/small"), CONFIG);
      assert.equal(late.status, 202);
      const lateRecord = await settledDeployment(agent, "late", ["failed", "active"]);
      assert.match(lateRecord.error_message, /disk full|not enough disk space/);
      assert.equal((await agent.request("/readyz")).status, 200);
    } finally {
      await agent.stop("SIGKILL");
    }

    // the restart on the still-full disk: it starts, and frees what no deployment wants
    agent = await startAgent(data, flags);
    try {
      assert.equal((await agent.request("/readyz")).status, 200);
      await assert.rejects(Deno.stat(orphan), Deno.errors.NotFound);
      assert.ok(
        agent.logs.some((l) =>
          l.msg === "disk is full: removed a partial download no deployment resumes" &&
          l.sha256 === "e".repeat(64)
        ),
      );
      const onDisk = JSON.parse(await Deno.readTextFile(`${data}/deployments/big.json`));
      const kept = await Deno.stat(`${data}/blobs/partial/${sha256Hex(body)}`).then(
        () => true,
        () => false,
      );
      if (onDisk.state !== "failed") {
        assert.ok(kept, `a partial a deployment resumes stays:\n${agent.lines.join("\n")}`);
      }
      await Deno.remove(`${data}/filler`);
      assert.equal((await agent.request("/livez")).status, 200);
    } finally {
      await agent.stop();
    }
  },
});

Deno.test({
  name: "the disk reserve counts concurrent downloads together",
  ignore: skipReason !== undefined,
  async fn() {
    await using disk = await smallDisk("12m");
    const data = disk.path;
    const a = randomBytes(7 * 1024 * 1024);
    const b = randomBytes(7 * 1024 * 1024);
    await using server = startBlobServer({
      "/a": { body: a, bytesPerSecond: 4 * 1024 * 1024 },
      "/b": { body: b, bytesPerSecond: 4 * 1024 * 1024 },
    });
    const agent = await startAgent(data, [
      "--set",
      "blobs.disk_reserve_mb=0",
      "--set",
      "deploy.max_concurrent=2",
      "--set",
      "fetch.max_concurrent=2",
    ]);
    try {
      for (const [id, body] of [["a", a], ["b", b]] as const) {
        const res = await postArtifact(
          agent,
          id,
          body,
          server.url(`/${id}`),
          CONFIG,
          DOWNLOAD_ONLY,
        );
        assert.equal(res.status, 202);
      }
      const ends = [
        await settledDeployment(agent, "a", ["failed", "ready"]),
        await settledDeployment(agent, "b", ["failed", "ready"]),
      ];
      const refused = ends.filter((r) => r.state === "failed");
      assert.equal(refused.length, 1, JSON.stringify(ends.map((r) => r.error_message)));
      assert.match(
        refused[0].error_message,
        /not enough disk space .*: need 7\.0 MiB .*, [\d.]+ MiB of it held for other downloads/,
      );
      assert.equal(ends.filter((r) => r.state === "ready").length, 1);
    } finally {
      await agent.stop();
    }
  },
});

Deno.test({
  name:
    "a program whose active record cannot be written (the disk filled during its start check) is stopped",
  ignore: skipReason !== undefined,
  async fn() {
    await using disk = await smallDisk("12m");
    const data = disk.path;
    // the program fills the disk itself as it starts (its instance directory is on the small
    // disk), so the disk is full well within the 1 s start check however slow the host is
    const program = new TextEncoder().encode(
      "#!/bin/sh\ncat /dev/zero > filler 2>/dev/null\nwhile :; do sleep 0.2; done\n",
    );
    await using server = startBlobServer({ "/prog": { body: program } });
    const agent = await startAgent(data, ["--set", "blobs.disk_reserve_mb=0"]);
    try {
      const res = await postArtifact(agent, "prog", program, server.url("/prog"), {
        type: "native_binary",
        arch: Deno.build.arch,
        args: [],
      });
      assert.equal(res.status, 202);
      // the state in memory may say active for the moment the stop takes: wait for the end
      const record = await settledDeployment(agent, "prog", ["failed"]);
      assert.match(record.error_message, /disk full/);
      const ps = await new Deno.Command("sh", { args: ["-c", "ps -eo args"], stdout: "piped" })
        .output();
      const running = new TextDecoder().decode(ps.stdout).split("\n")
        .filter((l) => l.includes(`${data}/instances/bin-prog/program`));
      assert.deepEqual(running, [], "no program runs that no record says active");
    } finally {
      await agent.stop();
      // the stopped loop's last `sleep 0.2` may hold the small disk for a moment
      await sleep(500);
    }
  },
});
