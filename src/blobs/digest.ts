import { createHash, type Hash } from "node:crypto";
import { UserError } from "../system/errors.ts";

const HEX64 = /^[0-9a-f]{64}$/;

/** Read size for hashing files: large enough that per-call overhead is negligible. */
const READ_CHUNK = 1 << 20;

/**
 * Normalises a SHA-256 given as `sha256:<hex>` or bare hex (any case) to lowercase hex;
 * anything else is a {@link UserError} that shows the text.
 */
export function parseSha256(text: string): string {
  const hex = text.trim().replace(/^sha256:/i, "").toLowerCase();
  if (!HEX64.test(hex)) {
    throw new UserError(
      `"${text}" is not a SHA-256: expected 64 hex digits, optionally after "sha256:"`,
    );
  }
  return hex;
}

/**
 * An incremental SHA-256. node:crypto's hash runs natively in Deno (about 1 GB/s here, faster
 * than coreutils sha256sum); WebCrypto's digest cannot stream.
 */
export function createSha256(): Hash {
  return createHash("sha256");
}

/** The SHA-256 of `data` as lowercase hex (a token's secret, a signed document's text). */
export function sha256Hex(data: string | Uint8Array): string {
  return createSha256().update(data).digest("hex");
}

/** Hashes the first `limit` bytes of a file (all of it by default) in one streaming pass. */
export async function hashFile(
  path: string,
  limit = Number.POSITIVE_INFINITY,
): Promise<{ hash: Hash; size: number }> {
  const hash = createSha256();
  const file = await Deno.open(path, { read: true });
  const buffer = new Uint8Array(READ_CHUNK);
  let size = 0;
  try {
    while (size < limit) {
      const want = Math.min(buffer.length, limit - size);
      const n = await file.read(buffer.subarray(0, want));
      if (n === null) break;
      hash.update(buffer.subarray(0, n));
      size += n;
    }
  } finally {
    file.close();
  }
  return { hash, size };
}
