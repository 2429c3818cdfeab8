import type { Advert, AdvertisedModel } from "../protocol/advert.ts";
import type { Config } from "../config/schema.ts";
import type { BlobStore } from "../blobs/store.ts";
import { probeLiveHardware, type StaticHardware } from "../system/hardware.ts";
import { VERSION } from "../version.ts";

/** What an advert is built from. */
export interface AdvertSources {
  config: Config;
  peerId: string;
  hardware: StaticHardware;
  dataDir: string;
  store: BlobStore;
  containerRuntimes: string[];
  /** ONNX execution providers that load on this node (probed once). */
  executionProviders: string[];
  /** Ids of the runtime instances this node runs now. */
  instances: () => string[];
  /** The models it runs jobs for peers on; empty when it takes no peer jobs. */
  models: () => AdvertisedModel[];
}

/**
 * Most blobs listed in one advert: 10,000 hashes are ~650 KiB, inside the 1 MiB message limit.
 * Holders of blobs past this are still found through the DHT, where every blob is announced.
 */
const MAX_ADVERTISED_BLOBS = 10_000;

/**
 * This node's capability advert, read fresh: live RAM and disk, the verified blobs held (the
 * most recently committed first, up to {@link MAX_ADVERTISED_BLOBS}), the instances running.
 */
export async function buildAdvert(s: AdvertSources): Promise<Advert> {
  const live = probeLiveHardware(s.hardware, s.dataDir);
  return {
    node_id: s.config.node.id,
    peer_id: s.peerId,
    formation_id: s.config.node.formation_id ?? null,
    version: VERSION,
    sent_at: new Date().toISOString(),
    arch: live.arch,
    os: live.os,
    ram_mb: { total: live.ram.total_mb, free: live.ram.free_mb },
    disk_mb: { total: live.disk.total_mb, free: live.disk.free_mb },
    gpus: live.gpus.map((g) => ({ name: g.name, vram_mb: g.vram_mb, kind: g.kind })),
    execution_providers: s.executionProviders,
    container_runtimes: s.containerRuntimes,
    capabilities: s.config.node.capabilities,
    blobs: (await s.store.list())
      .sort((a, b) => b.committed_at.localeCompare(a.committed_at))
      .slice(0, MAX_ADVERTISED_BLOBS)
      .map((b) => b.sha256),
    instances: s.instances(),
    models: s.models(),
  };
}
