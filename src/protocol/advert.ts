import { z } from "zod";

/**
 * A loaded model instance a node serves for peers (`/loam/infer/1`): the names it answers to,
 * its file, and its load, which entry nodes rank holders by. Sent with each advert, not per
 * queue change: an entry node adds its own in-flight jobs to the queue seen here.
 */
export const AdvertisedModelSchema = z.strictObject({
  instance_id: z.string().min(1).max(256),
  adapter: z.enum(["gguf_model", "onnx_model"]),
  names: z.array(z.string().min(1).max(256)).max(16),
  blob_hash: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  queued: z.number().int().min(0),
  running: z.number().int().min(0),
  /** Jobs it holds at most (running and waiting). */
  capacity: z.number().int().min(1),
  /** Recent generation speed; null for ONNX models and before the first job. */
  tokens_per_second: z.number().min(0).nullable(),
  /** Recent jobs per second; null before the first job. */
  jobs_per_second: z.number().min(0).nullable(),
});

/** A model a peer serves. */
export type AdvertisedModel = z.infer<typeof AdvertisedModelSchema>;

/** What a node offers: identity, hardware, runtimes, capabilities and the blobs it holds. */
export const AdvertSchema = z.strictObject({
  node_id: z.string().min(1),
  peer_id: z.string().min(1),
  formation_id: z.string().nullable(),
  version: z.string(),
  sent_at: z.iso.datetime({ offset: true }),
  arch: z.string(),
  os: z.string(),
  ram_mb: z.object({ total: z.number(), free: z.number() }),
  disk_mb: z.object({ total: z.number(), free: z.number() }),
  gpus: z.array(z.object({ name: z.string(), vram_mb: z.number(), kind: z.string() })),
  execution_providers: z.array(z.string()),
  container_runtimes: z.array(z.string()),
  capabilities: z.array(z.string()),
  /** Hex SHA-256 of every verified blob this node can serve. */
  blobs: z.array(z.string().regex(/^[0-9a-f]{64}$/)).max(100_000),
  instances: z.array(z.string()),
  /**
   * Models it runs jobs for peers on; empty when it takes none (`inference.accept_remote`),
   * absent from agents before fleet inference.
   */
  models: z.array(AdvertisedModelSchema).max(256).optional(),
});

/** A validated capability advert. */
export type Advert = z.infer<typeof AdvertSchema>;
