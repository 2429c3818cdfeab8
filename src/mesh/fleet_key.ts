/**
 * The fleet key: a libp2p private-network pre-shared key in the swarm.key format IPFS users know
 * (`/key/swarm/psk/1.0.0/`, `/base16/`, 64 hex digits). Only peers holding the same key can
 * complete a mesh connection, so a stranger on the site network cannot read adverts, fetch blobs
 * or flood gossip.
 * @module
 */
import { generateKey } from "@libp2p/pnet";
import { createSha256 } from "../blobs/digest.ts";
import { atomicWriteFile, refuseToOverwrite } from "../system/atomic_write.ts";
import { UserError } from "../system/errors.ts";

/** A fleet key file is 95 bytes; anything much bigger is not one (and is not read whole). */
const MAX_KEY_FILE_BYTES = 1024;
const KEY_FORMAT = /^\/key\/swarm\/psk\/1\.0\.0\/\r?\n\/base16\/\r?\n([0-9a-fA-F]{64})\s*$/;

/** A loaded fleet key: the file's bytes (what libp2p's pnet takes) and a fingerprint to show. */
export interface FleetKey {
  /** The key file's content, as `@libp2p/pnet`'s `preSharedKey({ psk })` expects it. */
  psk: Uint8Array;
  /**
   * `sha256:` and the first 16 hex digits of the SHA-256 of the 32 key bytes: enough to tell
   * two keys apart in `/v1/status` and logs, and says nothing about the key.
   */
  fingerprint: string;
}

function fingerprintOf(hexKey: string): string {
  const digest = createSha256().update(hexKey, "hex").digest("hex");
  return `sha256:${digest.slice(0, 16)}`;
}

/**
 * Reads and checks a fleet key file. Unreadable, too big or not in the swarm.key format is a
 * {@link UserError} (exit 2) naming the file: a node told to use a key never falls back to an
 * open mesh.
 */
export async function readFleetKey(path: string): Promise<FleetKey> {
  let bytes: Uint8Array;
  try {
    using file = await Deno.open(path);
    const size = (await file.stat()).size;
    if (size > MAX_KEY_FILE_BYTES) {
      throw new UserError(
        `fleet key ${path} is ${size} bytes; a swarm.key file is 95 (make one with loam keys fleet)`,
      );
    }
    bytes = new Uint8Array(await new Response(file.readable).arrayBuffer());
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`cannot read fleet key ${path}: ${(err as Error).message}`);
  }
  const match = new TextDecoder().decode(bytes).match(KEY_FORMAT);
  if (!match) {
    throw new UserError(
      `fleet key ${path} is not a swarm.key file (expected /key/swarm/psk/1.0.0/, /base16/ and ` +
        `64 hex digits on three lines; make one with loam keys fleet --out <file>)`,
    );
  }
  return { psk: bytes, fingerprint: fingerprintOf(match[1]!.toLowerCase()) };
}

/** Writes a new random fleet key to `path` (mode 0600); refuses to overwrite an existing file. */
export async function createFleetKey(path: string): Promise<FleetKey> {
  await refuseToOverwrite(path, "a fleet key");
  const bytes = new Uint8Array(95);
  generateKey(bytes);
  await atomicWriteFile(path, bytes, { mode: 0o600 });
  return await readFleetKey(path);
}
