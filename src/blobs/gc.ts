import { diskSpace } from "../system/disk.ts";
import type { BlobStore } from "./store.ts";

/** What a garbage collection removed (or would remove, in a dry run). */
export interface GcReport {
  removed_blobs: { sha256: string; size_bytes: number }[];
  removed_partials: { sha256: string; bytes: number }[];
  kept_blobs: number;
  freed_bytes: number;
  dry_run: boolean;
}

/** Options for {@link collectGarbage}. */
export interface GcOptions {
  /** hex → ids of the deployments that use the blob. */
  references: Map<string, string[]>;
  /** Partials untouched for longer than this are removed. */
  partialMaxAgeMs: number;
  dryRun?: boolean;
  now?: number;
}

/** Removes blobs no deployment references and partial downloads older than the limit. */
export async function collectGarbage(store: BlobStore, options: GcOptions): Promise<GcReport> {
  const now = options.now ?? Date.now();
  const dryRun = options.dryRun ?? false;
  const report: GcReport = {
    removed_blobs: [],
    removed_partials: [],
    kept_blobs: 0,
    freed_bytes: 0,
    dry_run: dryRun,
  };
  for (const blob of await store.list()) {
    if (options.references.has(blob.sha256)) {
      report.kept_blobs++;
      continue;
    }
    if (!dryRun) await store.remove(blob.sha256);
    report.removed_blobs.push({ sha256: blob.sha256, size_bytes: blob.size_bytes });
    report.freed_bytes += blob.size_bytes;
  }
  for (const partial of await store.listPartials()) {
    if (now - Date.parse(partial.updated_at) <= options.partialMaxAgeMs) continue;
    if (!dryRun) await store.removePartial(partial.sha256);
    report.removed_partials.push({ sha256: partial.sha256, bytes: partial.bytes });
    report.freed_bytes += partial.bytes;
  }
  return report;
}

/** Below this much free space a disk counts as full at start, even with no reserve set. */
const MIN_FREE_AT_START = 1024 * 1024;

/**
 * Start-up on a disk with less free space than the reserve (a download filled it before a
 * crash or a power cut): removes the partial downloads that no deployment will resume, so the
 * agent starts and has room to work. A partial in `wanted` stays, to be resumed.
 */
export async function freeDiskForStart(
  store: BlobStore,
  wanted: Set<string>,
  reserveBytes: number,
): Promise<{ sha256: string; bytes: number }[]> {
  if (diskSpace(store.root).free >= Math.max(reserveBytes, MIN_FREE_AT_START)) return [];
  const removed = [];
  for (const partial of await store.listPartials()) {
    if (wanted.has(partial.sha256)) continue;
    await store.removePartial(partial.sha256);
    removed.push({ sha256: partial.sha256, bytes: partial.bytes });
  }
  return removed;
}
