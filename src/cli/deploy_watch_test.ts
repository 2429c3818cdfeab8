import assert from "node:assert/strict";
import { DeploymentWatch } from "./deploy_watch.ts";

const status = (state: string, at = new Date().toISOString()) => ({
  directive_id: "up-2",
  node_id: "edge-1",
  reported_at: at,
  state: state as "active",
  progress_percent: 100,
});

Deno.test("a watch shows a reporting node's version as it changes, and waits for a self-update's", () => {
  const watch = new DeploymentWatch();
  const peer = "12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  assert.equal(watch.version(peer, "edge-1", "1.0.0"), undefined, "not reporting yet");
  watch.record(status("activating"), peer);
  assert.equal(watch.version(peer, "edge-1", "1.0.0"), undefined, "unchanged");
  watch.record(status("active"), peer);
  assert.equal(watch.settled(0, 1, "2.0.0"), false, "active, but still advertising 1.0.0");
  assert.equal(watch.settled(0, 1), true);
  assert.match(
    watch.version(peer, "edge-1", "2.0.0")!,
    /^edge-1\s+AAAAAAAA version 1\.0\.0 → 2\.0\.0$/,
  );
  assert.equal(watch.settled(0, 1, "2.0.0"), true);
});
