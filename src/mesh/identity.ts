import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import type { PrivateKey } from "@libp2p/interface";
import { toString as bytesToString } from "uint8arrays/to-string";
import { atomicWriteFile, refuseToOverwrite } from "../system/atomic_write.ts";
import { UserError } from "../system/errors.ts";

/** This node's Ed25519 key and the libp2p peer id derived from it. */
export interface Identity {
  privateKey: PrivateKey;
  peerId: string;
  /** Base64 of the raw 32-byte Ed25519 public key. */
  publicKey: string;
}

function toIdentity(privateKey: PrivateKey): Identity {
  return {
    privateKey,
    peerId: peerIdFromPrivateKey(privateKey).toString(),
    publicKey: bytesToString(privateKey.publicKey.raw, "base64"),
  };
}

/** Reads an identity key file; a missing, unreadable or corrupt file is a {@link UserError}. */
export async function readIdentity(path: string): Promise<Identity> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (err) {
    throw new UserError(`cannot read identity key ${path}: ${(err as Error).message}`);
  }
  let key: PrivateKey;
  try {
    key = privateKeyFromProtobuf(bytes);
  } catch (err) {
    throw new UserError(
      `identity key ${path} is corrupt (${(err as Error).message}); refusing to start with a ` +
        `different identity. Restore the file from a backup, or delete it to create a new peer id.`,
    );
  }
  if (key.type !== "Ed25519") {
    throw new UserError(`identity key ${path} is a ${key.type} key; loam needs Ed25519`);
  }
  return toIdentity(key);
}

/** A throwaway identity for a command that only watches (`loam deploy --watch-only`). */
export async function ephemeralIdentity(): Promise<Identity> {
  return toIdentity(await generateKeyPair("Ed25519"));
}

/** Creates a new Ed25519 identity at `path` (mode 0600); refuses to overwrite an existing file. */
export async function createIdentity(path: string): Promise<Identity> {
  await refuseToOverwrite(path, "an identity key");
  const key = await generateKeyPair("Ed25519");
  await atomicWriteFile(path, privateKeyToProtobuf(key), { mode: 0o600 });
  return toIdentity(key);
}

/** Loads the identity at `path`, creating it on first start; `created` says which happened. */
export async function loadOrCreateIdentity(
  path: string,
): Promise<{ identity: Identity; created: boolean }> {
  try {
    await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      return { identity: await createIdentity(path), created: true };
    }
    throw new UserError(`cannot read identity key ${path}: ${(err as Error).message}`);
  }
  return { identity: await readIdentity(path), created: false };
}
