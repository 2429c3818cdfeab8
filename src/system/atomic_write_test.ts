import assert from "node:assert/strict";
import { atomicWriteFile } from "./atomic_write.ts";

Deno.test("atomicWriteFile replaces content whole, sets the mode and leaves no temp file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/f.json`;
    await atomicWriteFile(path, "old");
    await atomicWriteFile(path, new TextEncoder().encode("new"), { mode: 0o600 });
    assert.equal(await Deno.readTextFile(path), "new");
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["f.json"]);
    await assert.rejects(atomicWriteFile(`${dir}/missing/f`, "x"), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
