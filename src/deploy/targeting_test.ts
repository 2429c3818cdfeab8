import assert from "node:assert/strict";
import { matchScope, type NodeFacts, unmetRequirement } from "./targeting.ts";
import { DeploymentDirectiveSchema } from "../protocol/directive.ts";

const node: NodeFacts = {
  node_id: "edge-1",
  peer_id: "12D3KooWpeer",
  formation_id: "north",
  capabilities: ["camera", "podman", "site:oslo"],
  arch: "aarch64",
  gpu_memory_mb: 0,
  ram_total_mb: 8000,
  disk_free_mb: 20000,
  execution_providers: ["cpu"],
};

function directive(requirements?: Record<string, unknown>) {
  return DeploymentDirectiveSchema.parse({
    directive_id: "d1",
    issued_at: "2026-11-23T10:00:00Z",
    issuer_node_id: "c2",
    scope: { type: "broadcast" },
    artifact: {
      blob_hash: `sha256:${"a".repeat(64)}`,
      size_bytes: 1,
      artifact_type: { type: "onnx_model" },
      ...(requirements ? { requirements } : {}),
    },
  });
}

Deno.test("scopes: broadcast, formation, node list (id or peer id), capability filter", () => {
  assert.deepEqual(matchScope({ type: "broadcast" }, node), { targeted: true });
  assert.deepEqual(matchScope({ type: "formation", formation_id: "north" }, node), {
    targeted: true,
  });
  assert.deepEqual(matchScope({ type: "formation", formation_id: "south" }, node), {
    targeted: false,
    reason: "formation south, this node is in north",
  });
  assert.equal(matchScope({ type: "nodes", node_ids: ["x", "edge-1"] }, node).targeted, true);
  assert.equal(matchScope({ type: "nodes", node_ids: ["12D3KooWpeer"] }, node).targeted, true);
  assert.equal(matchScope({ type: "nodes", node_ids: ["edge-2"] }, node).targeted, false);
  const cap = (extra: Record<string, unknown>) =>
    matchScope(
      { type: "capability", required_capabilities: [], custom: {}, ...extra } as never,
      node,
    );
  assert.deepEqual(cap({ required_capabilities: ["camera", "podman"] }), { targeted: true });
  assert.deepEqual(cap({ required_capabilities: ["lidar"] }), {
    targeted: false,
    reason: "lacks capabilities lidar",
  });
  assert.deepEqual(cap({ custom: { site: "oslo" } }), { targeted: true });
  assert.deepEqual(cap({ custom: { site: "rome" } }), {
    targeted: false,
    reason: "lacks capabilities site:rome",
  });
  assert.deepEqual(cap({ min_gpu_memory_mb: 1024 }), {
    targeted: false,
    reason: "GPU memory 0 MB < 1024 MB",
  });
  assert.deepEqual(cap({ min_memory_mb: 16000 }), {
    targeted: false,
    reason: "memory 8000 MB < 16000 MB",
  });
  assert.deepEqual(cap({ min_storage_mb: 100 }), { targeted: true });
});

Deno.test("capability scope by architecture: its own field or custom.arch, aliases allowed", () => {
  const cap = (extra: Record<string, unknown>) =>
    matchScope(
      { type: "capability", required_capabilities: [], custom: {}, ...extra } as never,
      node,
    );
  assert.deepEqual(cap({ arch: "arm64" }), { targeted: true });
  assert.deepEqual(cap({ arch: "aarch64", custom: { site: "oslo" } }), { targeted: true });
  assert.deepEqual(cap({ custom: { arch: "aarch64" } }), { targeted: true });
  assert.deepEqual(cap({ arch: "x86_64" }), {
    targeted: false,
    reason: "for x86_64, this node is aarch64",
  });
  assert.deepEqual(cap({ custom: { arch: "amd64", site: "oslo" } }), {
    targeted: false,
    reason: "for x86_64, this node is aarch64",
  });
});

Deno.test("requirements: VRAM, RAM, architecture, execution providers", () => {
  assert.equal(unmetRequirement(directive(), node), undefined);
  assert.equal(
    unmetRequirement(directive({ min_vram_mb: 4096 }), node),
    "needs 4096 MB VRAM, has 0",
  );
  assert.equal(
    unmetRequirement(directive({ min_ram_mb: 9000 }), node),
    "needs 9000 MB RAM, has 8000",
  );
  assert.equal(unmetRequirement(directive({ architectures: ["arm64"] }), node), undefined);
  assert.equal(
    unmetRequirement(directive({ architectures: ["x86_64"] }), node),
    "built for x86_64, this node is aarch64",
  );
  assert.equal(
    unmetRequirement(directive({ execution_providers: ["CPUExecutionProvider"] }), node),
    undefined,
  );
  assert.equal(
    unmetRequirement(
      directive({ execution_providers: ["CUDAExecutionProvider", "tensorrt"] }),
      node,
    ),
    "needs execution provider cuda or tensorrt, has cpu",
  );
});
