import assert from "node:assert/strict";
import { GossipRateLimit } from "./gossip_rate.ts";

Deno.test("gossip budget: ten seconds' burst per peer, then the rate, peers apart", () => {
  const limit = new GossipRateLimit(5);
  let accepted = 0;
  for (let i = 0; i < 1000; i++) if (limit.take("flooder", 0)) accepted++;
  assert.equal(accepted, 50, "the burst");
  assert.equal(limit.take("flooder", 100), false, "0.1 s refills half a message");
  assert.equal(limit.take("flooder", 200), true, "0.2 s refills one");
  assert.equal(limit.take("quiet", 200), true, "another peer has its own budget");
  const open = new GossipRateLimit(0);
  for (let i = 0; i < 1000; i++) assert.ok(open.take("anyone", 0));
});
