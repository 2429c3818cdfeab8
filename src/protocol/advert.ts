import { z } from "zod";

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
});

/** A validated capability advert. */
export type Advert = z.infer<typeof AdvertSchema>;
