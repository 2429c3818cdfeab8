/**
 * `deno task chaos` at a small count, as CI runs it: kill -9 at points of real deployments, a
 * disk that fills (as root), kills during start-up; after every restart the records, what runs,
 * the blobs and the staging dirs must agree. The README gives the full-size figures.
 * @module
 */
import assert from "node:assert/strict";

Deno.test({
  name: "deno task chaos: every round ends consistent",
  sanitizeResources: false,
  fn: async () => {
    // a fixed plan: kills while downloading (resumed with Range) and when active, kills
    // during start-up; `deno task chaos` draws a new plan each run
    const seed = 20261203;
    const out = await new Deno.Command("deno", {
      args: ["task", "--quiet", "chaos", "--deploys", "8", "--seed", String(seed)],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, `seed ${seed}:\n${stdout}`);
    assert.match(stdout.trim().split("\n").at(-1)!, /^8\/8 consistent$/);
  },
});
