import { join } from "node:path";
import { z } from "zod";
import { UserError } from "../system/errors.ts";
import type { BlobStore, PartialBlob, StoredBlob } from "../blobs/store.ts";
import { readBoundedJsonFile } from "../protocol/bounded_json.ts";
import { MAX_RECORD_BYTES } from "./records.ts";

/** The part of a deployment record (`<data>/deployments/<id>.json`) that names its blob. */
const RecordBlobSchema = z.object({
  directive_id: z.string(),
  directive: z.object({ artifact: z.object({ blob_hash: z.string() }) }),
});

/**
 * Which deployments reference which blob: hex → deployment ids, read from the deployment
 * records. A record that cannot be read is an error, so that garbage collection never deletes
 * a blob it cannot prove unused.
 */
export async function blobReferences(deploymentsDir: string): Promise<Map<string, string[]>> {
  const refs = new Map<string, string[]>();
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(deploymentsDir));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return refs;
    throw err;
  }
  for (const entry of entries) {
    if (!entry.isFile || !entry.name.endsWith(".json")) continue;
    const path = join(deploymentsDir, entry.name);
    let record: z.infer<typeof RecordBlobSchema>;
    try {
      record = RecordBlobSchema.parse(await readBoundedJsonFile(path, MAX_RECORD_BYTES));
    } catch (err) {
      throw new UserError(`deployment record ${path} is unreadable: ${(err as Error).message}`);
    }
    const hex = record.directive.artifact.blob_hash.replace(/^sha256:/, "").toLowerCase();
    refs.set(hex, [...(refs.get(hex) ?? []), record.directive_id]);
  }
  return refs;
}

/** Verified blobs with the deployments that use them, and partial downloads (`/v1/blobs`). */
export interface BlobsReport {
  blobs: (StoredBlob & { referenced_by: string[] })[];
  partials: PartialBlob[];
}

/** Lists the store with each blob's referencing deployments. */
export async function blobsReport(store: BlobStore, deploymentsDir: string): Promise<BlobsReport> {
  const refs = await blobReferences(deploymentsDir);
  return {
    blobs: (await store.list()).map((b) => ({ ...b, referenced_by: refs.get(b.sha256) ?? [] })),
    partials: await store.listPartials(),
  };
}
