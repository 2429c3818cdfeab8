import assert from "node:assert/strict";
import { runLoam, spawnLoam, tempDir } from "./harness.ts";
import { startBlobServer, writeRandomFile } from "../fixtures/blob_server.ts";
import { sleep } from "../../src/system/sleep.ts";

const SIZE = 200 * 1024 * 1024;

Deno.test("a fetch killed with -9 mid-download resumes from the bytes on disk", async () => {
  await using dir = await tempDir();
  const source = `${dir.path}/source.bin`;
  const hex = await writeRandomFile(source, SIZE);
  await using server = startBlobServer({
    "/big": {
      body: { file: source, size: SIZE },
      etag: '"big-v1"',
      bytesPerSecond: 40 * 1024 * 1024,
    },
  });
  const args = [
    "fetch",
    server.url("/big"),
    "--sha256",
    hex,
    "--size",
    String(SIZE),
    "--data-dir",
    `${dir.path}/data`,
  ];
  const partial = `${dir.path}/data/blobs/partial/${hex}`;

  const first = spawnLoam(args);
  const deadline = Date.now() + 30_000;
  let onDisk = 0;
  while (onDisk < 60 * 1024 * 1024 && Date.now() < deadline) {
    await sleep(50);
    onDisk = await Deno.stat(partial).then((s) => s.size, () => 0);
  }
  first.kill("SIGKILL");
  const killed = await first.output();
  assert.equal(killed.signal, "SIGKILL");
  const kept = (await Deno.stat(partial)).size;
  assert.ok(kept >= 60 * 1024 * 1024 && kept < SIZE, `partial holds ${kept} bytes`);

  server.routes["/big"]!.bytesPerSecond = undefined;
  const second = await runLoam(args);
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.stdout.trim(), `${dir.path}/data/blobs/sha256/${hex}`);

  const [r1, r2] = server.requests;
  assert.equal(server.requests.length, 2);
  assert.equal(r2!.range, `bytes=${kept}-`);
  assert.equal(r2!.ifRange, '"big-v1"');
  assert.equal(r2!.status, 206);
  const redownloaded = r1!.bytesSent + r2!.bytesSent - SIZE;
  assert.ok(redownloaded < 16 * 1024 * 1024, `bytes fetched twice: ${redownloaded}`);
  await assert.rejects(Deno.stat(partial), Deno.errors.NotFound);
});
