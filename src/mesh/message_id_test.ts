import assert from "node:assert/strict";
import { originSeqnoKey } from "./message_id.ts";

const from = new Uint8Array([0, 36, 8, 1, 18, 32, 7, 7]);

Deno.test("message id: copies of one message share a key; other sequence numbers and origins do not", () => {
  const key = originSeqnoKey({ from, seqno: new Uint8Array([1, 2]) });
  assert.equal(key, originSeqnoKey({ from, seqno: new Uint8Array([1, 2]) }));
  assert.notEqual(key, originSeqnoKey({ from, seqno: new Uint8Array([1, 3]) }));
  assert.notEqual(key, originSeqnoKey({ from: from.with(7, 8), seqno: new Uint8Array([1, 2]) }));
});

Deno.test("message id: a message without origin or sequence number gets no reusable key", () => {
  assert.equal(originSeqnoKey({ seqno: new Uint8Array([1]) }), "");
  assert.equal(originSeqnoKey({ from }), "");
});
