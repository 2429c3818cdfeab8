import assert from "node:assert/strict";
import { jsonDepth, JsonLimitError, MAX_JSON_DEPTH, parseBoundedJson } from "./bounded_json.ts";

Deno.test("jsonDepth counts nesting outside strings, without recursion", () => {
  assert.equal(jsonDepth("1"), 0);
  assert.equal(jsonDepth('{"a":[1,{"b":[]}]}'), 4);
  assert.equal(jsonDepth('{"a":"[[[[{{{\\"[["}'), 1);
  // a string ending in an escaped backslash ends at the next quote; brackets after it count
  assert.equal(jsonDepth('["a\\\\",["b"]]'), 2);
  assert.equal(jsonDepth('["\\\\\\"]]"]'), 1);
  assert.equal(jsonDepth('["unterminated [[['), 1);
  // 1,000,000 levels: one pass, no stack
  assert.equal(jsonDepth("[".repeat(1_000_000) + "]".repeat(1_000_000)), 1_000_000);
  assert.equal(jsonDepth("[".repeat(1_000_000), 10), 11);
});

Deno.test("parseBoundedJson refuses deep and large texts, parses the rest", () => {
  const deep = (n: number) => `{"config":${"[".repeat(n)}${"]".repeat(n)}}`;
  assert.deepEqual(parseBoundedJson(deep(MAX_JSON_DEPTH - 1), { maxBytes: 1 << 20 }), {
    config: JSON.parse(deep(MAX_JSON_DEPTH - 1)).config,
  });
  assert.throws(
    () => parseBoundedJson(deep(3000), { maxBytes: 1 << 20 }),
    (err) => err instanceof JsonLimitError && /deeper than 64 levels/.test(err.message),
  );
  assert.throws(
    () => parseBoundedJson('"' + "é".repeat(600) + '"', { maxBytes: 1000 }),
    /larger than 1000 bytes/,
  );
  assert.equal(parseBoundedJson('"' + "é".repeat(400) + '"', { maxBytes: 1000 }), "é".repeat(400));
  assert.throws(() => parseBoundedJson("{", { maxBytes: 10 }), SyntaxError);
});
