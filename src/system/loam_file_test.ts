import assert from "node:assert/strict";
import { join } from "node:path";
import { compareVersions, readLoamFile, targetArch } from "./loam_file.ts";
import { writeFakeLoamFile } from "../../tests/fixtures/fake_loam_file.ts";

Deno.test("a loam file is read from its header and checked against its bytes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "loam");
    await writeFakeLoamFile(path, { target: "aarch64-unknown-linux-gnu" });
    const info = await readLoamFile(path);
    assert.equal(info.version, "1.2.0");
    assert.equal(targetArch(info.target), "aarch64");

    const bytes = await Deno.readFile(path);
    await Deno.writeFile(path, bytes.subarray(0, bytes.length - 10));
    await assert.rejects(readLoamFile(path), /damaged: its payload is \d+ bytes, its header says/);

    const altered = bytes.slice();
    altered[altered.length - 1] ^= 1;
    await Deno.writeFile(path, altered);
    await assert.rejects(readLoamFile(path), /damaged: its payload hashes to sha256:[0-9a-f]{64}/);

    await Deno.writeTextFile(path, "#!/bin/sh\necho hello\n");
    await assert.rejects(readLoamFile(path), /not a self-extracting loam file/);
    await Deno.writeFile(path, new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]));
    await assert.rejects(readLoamFile(path), /not a self-extracting loam file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("versions order as numbers part by part; a pre-release before its release", () => {
  assert.equal(compareVersions("0.10.0", "0.9.2"), 1);
  assert.equal(compareVersions("1.0", "1.0.0"), 0);
  assert.equal(compareVersions("1.0.0-rc1", "1.0.0"), -1);
  assert.equal(compareVersions("1.0.0", "1.0.0-rc1"), 1);
  assert.equal(compareVersions("1.0.0-rc1", "1.0.0-rc2"), -1);
  assert.equal(compareVersions("2.0.0+build7", "2.0.0"), 0);
  assert.equal(compareVersions("99.2.0", "0.0.0-shipped-test"), 1);
  assert.equal(compareVersions("0.1.0", "0.2.0"), -1);
});
