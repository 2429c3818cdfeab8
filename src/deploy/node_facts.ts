import type { Config } from "../config/schema.ts";
import { probeLiveHardware, type StaticHardware } from "../system/hardware.ts";
import type { NodeFacts } from "./targeting.ts";

/** What the facts are read from. */
export interface FactSources {
  config: Config;
  peerId: string;
  hardware: StaticHardware;
  dataDir: string;
  containerRuntimes: string[];
  /** ONNX execution providers that load on this node (probed once). */
  executionProviders: string[];
  /** Artifact types this build can activate (its runtime adapters). */
  adapterKinds: string[];
}

/**
 * This node as targeting sees it, read fresh (free disk changes): capabilities are the
 * configured ones plus detected ones: container runtimes on PATH, `cuda` with an NVIDIA GPU,
 * `jetson` on a Jetson board, and the artifact types the runtime adapters can activate.
 */
export function nodeFacts(s: FactSources): NodeFacts {
  const live = probeLiveHardware(s.hardware, s.dataDir);
  const detected = [
    ...s.containerRuntimes,
    ...(live.gpus.some((g) => g.kind === "nvidia") ? ["cuda"] : []),
    ...(live.gpus.some((g) => g.kind === "jetson") ? ["cuda", "jetson"] : []),
    ...s.adapterKinds,
  ];
  return {
    node_id: s.config.node.id,
    peer_id: s.peerId,
    formation_id: s.config.node.formation_id ?? null,
    capabilities: [...new Set([...s.config.node.capabilities, ...detected])],
    arch: live.arch,
    gpu_memory_mb: Math.max(0, ...live.gpus.map((g) => g.vram_mb)),
    ram_total_mb: live.ram.total_mb,
    disk_free_mb: live.disk.free_mb,
    execution_providers: s.executionProviders,
  };
}
