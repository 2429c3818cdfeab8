import { z } from "zod";
import { HardwareRequirementsSchema } from "./hardware_requirements.ts";

/** A Peat ModelManifest: what a model is, what it needs, and where it comes from. */
export const ModelManifestSchema = z.strictObject({
  model_id: z.string().min(1),
  name: z.string().default(""),
  /** e.g. "Llm", "Detector", "Embedding". */
  model_type: z.string().default(""),
  /** e.g. "Gguf", "Onnx". */
  format: z.string().default(""),
  version: z.string().default(""),
  /** e.g. "Q4_K_M", "F16". */
  quantization: z.string().default(""),
  size_bytes: z.number().int().min(0).optional(),
  /** SHA-256 of the model file, hex (with or without a `sha256:` prefix). */
  sha256: z.string().regex(/^(sha256:)?[0-9a-f]{64}$/, "expected 64 lowercase hex").optional(),
  blob_hash: z.string().optional(),
  download_url: z.string().optional(),
  requirements: HardwareRequirementsSchema.prefault({}),
  features: z.array(z.string()).default([]),
  params_billions: z.number().positive().optional(),
  context_length: z.number().int().positive().optional(),
  classes: z.array(z.string()).optional(),
  license: z.string().default(""),
  source: z.string().default(""),
  created_at: z.string().optional(),
  metadata: z.record(z.string(), z.unknown()).default({}),
});

/** A validated model manifest. */
export type ModelManifest = z.infer<typeof ModelManifestSchema>;

/** Memory per parameter relative to FP16, by quantization (llama.cpp's bits per weight). */
const MEMORY_FACTORS: Record<string, number> = {
  f32: 2,
  fp32: 2,
  f16: 1,
  fp16: 1,
  bf16: 1,
  q8_0: 0.53,
  int8: 0.5,
  q6_k: 0.41,
  q5_k_m: 0.36,
  q5_0: 0.34,
  q4_k_m: 0.3,
  q4_0: 0.28,
  int4: 0.25,
  q3_k_m: 0.24,
  q2_k: 0.2,
};

/**
 * Peat's estimate of the memory a model needs: parameters × 2 bytes (FP16) × the quantization's
 * factor × 1.2 overhead; the recommended VRAM when the parameter count is unknown.
 */
export function estimatedVramMb(manifest: ModelManifest): number {
  if (manifest.params_billions === undefined) {
    return manifest.requirements.recommended_vram_mb ?? manifest.requirements.min_vram_mb;
  }
  const factor = MEMORY_FACTORS[manifest.quantization.toLowerCase()] ?? 1;
  return Math.round(manifest.params_billions * 2 * 1024 * factor * 1.2);
}
