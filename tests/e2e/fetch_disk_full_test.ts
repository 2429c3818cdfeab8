import assert from "node:assert/strict";
import { runLoam } from "./harness.ts";
import { randomBytes, sha256Hex, startBlobServer } from "../fixtures/blob_server.ts";
import { smallDisk, tmpfsSkipReason } from "../fixtures/tmpfs.ts";

const skipReason = await tmpfsSkipReason();
if (skipReason) console.log(`SKIP disk-full fetch tests: ${skipReason}`);

Deno.test({
  name: "disk full mid-download: clear error, no blob, partial kept for resume",
  ignore: skipReason !== undefined,
  async fn() {
    await using disk = await smallDisk("8m");
    const data = disk.path;
    const body = randomBytes(16 * 1024 * 1024);
    const hex = sha256Hex(body);
    await using server = startBlobServer({ "/big": { body, contentLength: "omit" } });
    const common = ["--data-dir", data, "--set", "blobs.disk_reserve_mb=0"];

    const res = await runLoam(["fetch", server.url("/big"), "--sha256", hex, ...common]);
    assert.equal(res.code, 1, res.stderr);
    assert.match(
      res.stderr,
      new RegExp(`cannot fetch sha256:${hex}: disk full while writing .*/blobs/partial/${hex}`),
    );
    assert.deepEqual([...Deno.readDirSync(`${data}/blobs/sha256`)], []);
    assert.ok(
      (await Deno.stat(`${data}/blobs/partial/${hex}`)).size > 0,
      "partial kept for resume",
    );

    // with the size declared, the same fetch is refused before any byte is requested
    const requests = server.requests.length;
    await Deno.remove(`${data}/blobs/partial/${hex}`);
    const pre = await runLoam([
      "fetch",
      server.url("/big"),
      "--sha256",
      hex,
      "--size",
      String(body.length),
      ...common,
    ]);
    assert.equal(pre.code, 1);
    assert.match(
      pre.stderr,
      /not enough disk space in .*: need 16\.0 MiB plus the 0\.0 MiB reserve, [\d.]+ MiB free/,
    );
    assert.equal(server.requests.length, requests);
  },
});
