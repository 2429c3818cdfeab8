import assert from "node:assert/strict";
import { checkGgufFile } from "./gguf_check.ts";
import { buildTinyGguf } from "../../tasks/gen_tiny_gguf.ts";

async function check(bytes: Uint8Array): Promise<string | undefined> {
  const path = await Deno.makeTempFile({ suffix: ".gguf" });
  try {
    await Deno.writeFile(path, bytes);
    await checkGgufFile(path);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await Deno.remove(path);
  }
}

function withU64(bytes: Uint8Array, at: number, value: bigint): Uint8Array {
  const copy = bytes.slice();
  new DataView(copy.buffer).setBigUint64(at, value, true);
  return copy;
}

Deno.test("gguf check: a real file passes; corrupt headers are refused with the field named", async () => {
  const good = buildTinyGguf();
  assert.equal(await check(good), undefined);
  assert.match((await check(new TextEncoder().encode("GGML...."))) ?? "", /not a GGUF file/);
  const version = good.slice();
  new DataView(version.buffer).setUint32(4, 52483, true);
  assert.match((await check(version)) ?? "", /GGUF version 52483/);
  // the counts that made llama.cpp's parse spin: tensor count and key count
  assert.match((await check(withU64(good, 8, 1n << 40n))) ?? "", /tensor count .* not plausible/);
  assert.match(
    (await check(withU64(good, 16, 1n << 19n))) ?? "",
    /^key \d+ length \d+ is too large/,
  );
  assert.match(
    (await check(good.slice(0, good.length - 100))) ?? "",
    /data ends at byte \d+, past/,
  );
  assert.match((await check(good.slice(0, 20))) ?? "", /key count runs past the end/);
});
