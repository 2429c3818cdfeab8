import type { DeploymentDirective } from "../protocol/directive.ts";
import type { HardwareRequirements } from "../protocol/hardware_requirements.ts";
import { normalArch } from "../system/arch.ts";

/** What targeting and requirement checks know about this node. */
export interface NodeFacts {
  node_id: string;
  peer_id: string;
  formation_id: string | null;
  /** Configured capabilities plus detected ones (container runtimes, cuda, ...). */
  capabilities: string[];
  arch: string;
  /** Largest GPU memory on the node (0 without a GPU). */
  gpu_memory_mb: number;
  ram_total_mb: number;
  disk_free_mb: number;
  execution_providers: string[];
}

/** Whether a directive is for this node, and why not. */
export type TargetResult = { targeted: true } | { targeted: false; reason: string };

/** Matches the directive's scope against this node for real (Peat left formation/capability as stubs). */
export function matchScope(scope: DeploymentDirective["scope"], node: NodeFacts): TargetResult {
  switch (scope.type) {
    case "broadcast":
      return { targeted: true };
    case "formation":
      return scope.formation_id === node.formation_id ? { targeted: true } : {
        targeted: false,
        reason: `formation ${scope.formation_id}, this node is in ${node.formation_id ?? "none"}`,
      };
    case "nodes":
      return scope.node_ids.includes(node.node_id) || scope.node_ids.includes(node.peer_id)
        ? { targeted: true }
        : { targeted: false, reason: `node list does not name ${node.node_id}` };
    case "capability": {
      // a fleet of mixed boxes gets one directive per architecture (a loam file, a binary):
      // a box of another one is not targeted, so it neither fails nor counts toward a rollback
      const { arch: customArch, ...custom } = scope.custom;
      for (const wanted of [scope.arch, customArch]) {
        if (wanted !== undefined && normalArch(wanted) !== normalArch(node.arch)) {
          return {
            targeted: false,
            reason: `for ${normalArch(wanted)}, this node is ${normalArch(node.arch)}`,
          };
        }
      }
      const missing = scope.required_capabilities.filter((c) => !node.capabilities.includes(c));
      for (const [key, value] of Object.entries(custom)) {
        if (!node.capabilities.includes(`${key}:${value}`)) missing.push(`${key}:${value}`);
      }
      if (missing.length > 0) {
        return { targeted: false, reason: `lacks capabilities ${missing.join(", ")}` };
      }
      const short = [
        ["GPU memory", scope.min_gpu_memory_mb, node.gpu_memory_mb],
        ["memory", scope.min_memory_mb, node.ram_total_mb],
        ["free storage", scope.min_storage_mb, node.disk_free_mb],
      ] as const;
      for (const [what, min, has] of short) {
        if (min !== undefined && has < min) {
          return { targeted: false, reason: `${what} ${has} MB < ${min} MB` };
        }
      }
      return { targeted: true };
    }
  }
}

/** `CUDAExecutionProvider` → `cuda`, `cpu` → `cpu`. */
function normalProvider(name: string): string {
  return name.toLowerCase().replace(/executionprovider$/, "");
}

/**
 * Checks the artifact's HardwareRequirements (ModelManifest) against this node before any
 * download; returns why it cannot run here, e.g. "needs 4096 MB VRAM, has 0", or undefined.
 */
export function unmetRequirement(
  directive: DeploymentDirective,
  node: NodeFacts,
): string | undefined {
  for (const req of [directive.artifact.requirements, directive.manifest?.requirements]) {
    const unmet = req && unmetHardware(req, node);
    if (unmet) return unmet;
  }
  return undefined;
}

/** Why `node` cannot meet `req` (VRAM, RAM, architecture, execution provider), or undefined. */
export function unmetHardware(req: HardwareRequirements, node: NodeFacts): string | undefined {
  if (req.min_vram_mb > node.gpu_memory_mb) {
    return `needs ${req.min_vram_mb} MB VRAM, has ${node.gpu_memory_mb}`;
  }
  if (req.min_ram_mb > node.ram_total_mb) {
    return `needs ${req.min_ram_mb} MB RAM, has ${node.ram_total_mb}`;
  }
  const arches = req.architectures.map(normalArch);
  if (arches.length > 0 && !arches.includes(normalArch(node.arch))) {
    return `built for ${arches.join(", ")}, this node is ${normalArch(node.arch)}`;
  }
  const wanted = req.execution_providers.map(normalProvider);
  const have = node.execution_providers.map(normalProvider);
  if (wanted.length > 0 && !wanted.some((p) => have.includes(p))) {
    return `needs execution provider ${wanted.join(" or ")}, has ${have.join(", ") || "none"}`;
  }
  return undefined;
}
