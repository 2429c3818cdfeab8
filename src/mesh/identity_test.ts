import assert from "node:assert/strict";
import { createIdentity, loadOrCreateIdentity, readIdentity } from "./identity.ts";

Deno.test("identity: created once with mode 0600, then loaded with the same peer id", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/identity.key`;
    const first = await loadOrCreateIdentity(path);
    assert.equal(first.created, true);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.equal((await Deno.readFile(path)).length, 68);
    const second = await loadOrCreateIdentity(path);
    assert.equal(second.created, false);
    assert.equal(second.identity.peerId, first.identity.peerId);
    assert.equal(second.identity.publicKey, first.identity.publicKey);
    assert.equal(atob(first.identity.publicKey).length, 32);
    await assert.rejects(createIdentity(path), /refusing to overwrite/);
    await Deno.writeFile(path, new Uint8Array([8, 1, 18, 3, 1, 2, 3]));
    await assert.rejects(readIdentity(path), /is corrupt/);
    await assert.rejects(loadOrCreateIdentity(path), /is corrupt/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
