import { z } from "zod";

/** ModelManifest HardwareRequirements: what a node needs to run the artifact. */
export const HardwareRequirementsSchema = z.strictObject({
  min_vram_mb: z.number().int().min(0).default(0),
  recommended_vram_mb: z.number().int().min(0).optional(),
  min_ram_mb: z.number().int().min(0).default(0),
  execution_providers: z.array(z.string()).default([]),
  architectures: z.array(z.string()).default([]),
});

/** Validated hardware requirements. */
export type HardwareRequirements = z.infer<typeof HardwareRequirementsSchema>;
