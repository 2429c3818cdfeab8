import assert from "node:assert/strict";
import { backoffDelay } from "./backoff.ts";

Deno.test("backoffDelay doubles per pass up to the cap, with jitter in the upper half", () => {
  assert.equal(backoffDelay(0, 500, 30_000, () => 0), 250);
  assert.equal(backoffDelay(0, 500, 30_000, () => 1), 500);
  assert.equal(backoffDelay(3, 500, 30_000, () => 1), 4000);
  assert.equal(backoffDelay(20, 500, 30_000, () => 1), 30_000);
  assert.equal(backoffDelay(20, 500, 30_000, () => 0), 15_000);
  for (let i = 0; i < 100; i++) {
    const d = backoffDelay(2, 100, 1000);
    assert.ok(d >= 200 && d <= 400, String(d));
  }
});
