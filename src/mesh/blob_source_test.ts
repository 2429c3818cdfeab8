import assert from "node:assert/strict";
import { blobCid } from "./blob_source.ts";

Deno.test("blobCid is a CIDv1 raw sha2-256 of the hex digest", () => {
  const hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  const cid = blobCid(hex);
  assert.equal(cid.version, 1);
  assert.equal(cid.code, 0x55);
  assert.equal(cid.multihash.code, 0x12);
  assert.equal([...cid.multihash.digest].map((b) => b.toString(16).padStart(2, "0")).join(""), hex);
  assert.equal(cid.toString(), "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku");
});
