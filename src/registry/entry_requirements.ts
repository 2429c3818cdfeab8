/**
 * What a registry entry asks of the node that runs it, as HardwareRequirements: its manifest's
 * when it has one (Peat's `can_run_on` decides), and the reference's resource requirements
 * (memory, a GPU, VRAM) either way.
 * @module
 */
import type { HardwareRequirements } from "../protocol/hardware_requirements.ts";
import type { EntryView } from "./registry_store.ts";

/** The requirement lists `fits_here` checks for `entry`, strictest first. */
export function entryRequirements(entry: EntryView): HardwareRequirements[] {
  const manifest = entry.manifest as { requirements?: HardwareRequirements } | undefined;
  const res = entry.resource_requirements as {
    min_memory_mb?: number;
    requires_gpu?: boolean;
    min_vram_gb?: number;
  } | undefined;
  const vram = (res?.min_vram_gb ?? 0) * 1024 || (res?.requires_gpu ? 1 : 0);
  return [
    ...(manifest?.requirements ? [manifest.requirements] : []),
    {
      min_vram_mb: vram,
      min_ram_mb: res?.min_memory_mb ?? 0,
      execution_providers: [],
      architectures: [],
    },
  ];
}
