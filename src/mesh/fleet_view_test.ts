import assert from "node:assert/strict";
import { FleetView } from "./fleet_view.ts";
import type { Advert } from "../protocol/advert.ts";
import type { DeploymentStatus } from "../protocol/status.ts";

function advert(peer: string, node: string, sentAt: string, version = "1.0.0"): Advert {
  return {
    node_id: node,
    peer_id: peer,
    formation_id: null,
    version,
    sent_at: sentAt,
    arch: "aarch64",
    os: "linux",
    ram_mb: { total: 8000, free: 4000 },
    disk_mb: { total: 64000, free: 32000 },
    gpus: [{ name: "Orin", vram_mb: 8000, kind: "nvidia" }],
    execution_providers: [],
    container_runtimes: [],
    capabilities: [],
    blobs: [],
    instances: ["bin-x"],
  };
}

function status(id: string, state: DeploymentStatus["state"], at: string): DeploymentStatus {
  return { directive_id: id, node_id: "n", reported_at: at, state, progress_percent: 100 };
}

Deno.test("the fleet view: newest advert and status per node, online by connection or recent word", () => {
  const fleet = new FleetView(90_000);
  const t0 = Date.parse("2026-12-07T10:00:00Z");
  fleet.recordAdvert(advert("self", "hub", "2026-12-07T10:00:00Z"), t0);
  fleet.recordAdvert(advert("p1", "jetson-1", "2026-12-07T10:00:05Z", "1.1.0"), t0);
  fleet.recordAdvert(advert("p1", "jetson-1", "2026-12-07T09:59:00Z", "0.9.0"), t0); // older
  fleet.recordAdvert(advert("p2", "jetson-2", "2026-12-07T10:00:00Z"), t0);
  fleet.recordStatus(status("d1", "active", "2026-12-07T10:00:10Z"), "p1", t0);
  fleet.recordStatus(status("d1", "downloading", "2026-12-07T10:00:01Z"), "p1", t0); // older
  fleet.recordStatus(status("d2", "failed", "2026-12-07T10:00:11Z"), "p3", t0); // no advert

  const later = t0 + 120_000;
  const nodes = fleet.nodes("self", new Set(["p2"]), later);
  assert.deepEqual(nodes.map((n) => [n.peer_id, n.self, n.online]), [
    ["self", true, true],
    ["p1", false, false], // silent for 2 minutes
    ["p2", false, true], // connected
    ["p3", false, false],
  ]);
  const p1 = nodes.find((n) => n.peer_id === "p1")!;
  assert.equal(p1.version, "1.1.0");
  assert.equal(p1.last_seen, new Date(t0).toISOString());
  assert.deepEqual(p1.deployments.map((d) => [d.directive_id, d.state]), [["d1", "active"]]);
  assert.equal(nodes.find((n) => n.peer_id === "p3")!.node_id, null);
  assert.deepEqual(p1.gpus.map((g) => g.name), ["Orin"]);
});

Deno.test("the fleet view keeps at most 4096 nodes and 256 deployments a node", () => {
  const fleet = new FleetView(1000);
  for (let i = 0; i < 4100; i++) {
    fleet.recordAdvert(advert(`p${i}`, `n${i}`, "2026-12-07T10:00:00Z"));
  }
  for (let i = 0; i < 300; i++) {
    fleet.recordStatus(status(`d${i}`, "active", "2026-12-07T10:00:00Z"), "p4099");
  }
  const nodes = fleet.nodes("none", new Set());
  assert.equal(nodes.length, 4096);
  assert.ok(!nodes.some((n) => n.peer_id === "p0"), "the least recently heard from went");
  assert.equal(nodes.find((n) => n.peer_id === "p4099")!.deployments.length, 256);
});
