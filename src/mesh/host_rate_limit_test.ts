import assert from "node:assert/strict";
import { multiaddr } from "@multiformats/multiaddr";
import { hostOf, HostRateLimit } from "./host_rate_limit.ts";

Deno.test("refusal lines: one a minute per host, then the count held back", () => {
  const limit = new HostRateLimit();
  assert.deepEqual(limit.admit("/ip4/10.0.0.7", 0), { log: true, held: undefined });
  for (let i = 1; i <= 500; i++) assert.deepEqual(limit.admit("/ip4/10.0.0.7", i), { log: false });
  assert.deepEqual(limit.admit("/ip4/10.0.0.8", 10), { log: true, held: undefined });
  assert.deepEqual(limit.admit("/ip4/10.0.0.7", 60_001), { log: true, held: 500 });
  assert.equal(hostOf(multiaddr("/ip4/10.0.0.7/tcp/7412")), "/ip4/10.0.0.7");
});
