import type { BlobStore } from "./store.ts";

/** Outcome of re-verifying one blob. */
export interface VerifyResult {
  sha256: string;
  ok: boolean;
  /** Where a bad blob was moved. */
  quarantined_to?: string;
}

/** Re-hashes every verified blob; a blob whose bytes no longer match is quarantined. */
export async function verifyAll(
  store: BlobStore,
  onResult?: (result: VerifyResult) => void,
): Promise<VerifyResult[]> {
  const results: VerifyResult[] = [];
  for (const blob of await store.list()) {
    const ok = await store.verify(blob.sha256);
    const result: VerifyResult = ok
      ? { sha256: blob.sha256, ok }
      : { sha256: blob.sha256, ok, quarantined_to: await store.quarantine(blob.sha256) };
    results.push(result);
    onResult?.(result);
  }
  return results;
}
