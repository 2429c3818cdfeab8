import assert from "node:assert/strict";
import { ConsoleCodes } from "./console_codes.ts";

Deno.test("a console code opens one session with its scopes, once, within its time", async () => {
  const codes = new ConsoleCodes(200);
  const { code, expires_at } = codes.issue(["status:read"]);
  assert.match(code, /^[\w-]{32}$/);
  assert.ok(Date.parse(expires_at) > Date.now());
  assert.deepEqual(codes.redeem(code), ["status:read"]);
  assert.equal(codes.redeem(code), undefined, "used");
  assert.equal(codes.redeem("made-up"), undefined);
  const late = codes.issue(["*"]).code;
  await new Promise((r) => setTimeout(r, 250));
  assert.equal(codes.redeem(late), undefined, "expired");
});

Deno.test("at most 64 codes wait: the oldest goes first", () => {
  const codes = new ConsoleCodes();
  const first = codes.issue(["*"]).code;
  const rest = Array.from({ length: 64 }, () => codes.issue(["*"]).code);
  assert.equal(codes.redeem(first), undefined);
  assert.deepEqual(codes.redeem(rest.at(-1)!), ["*"]);
});
