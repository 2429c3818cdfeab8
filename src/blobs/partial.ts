import type { Hash } from "node:crypto";
import { createSha256, hashFile } from "./digest.ts";

/** Bytes written between fsyncs of a partial, bounding what power loss can take back. */
const SYNC_EVERY = 64 * 1024 * 1024;

/**
 * An in-flight download on disk: appends bytes while hashing them, so the digest is ready the
 * moment the last byte lands (no second read). Opening an existing partial re-hashes what is
 * already there, which is what resuming costs.
 */
export class PartialDownload {
  readonly path: string;
  #file: Deno.FsFile;
  #hash: Hash;
  #size: number;
  #unsynced = 0;
  /** Bytes present when this partial was opened (what a resume starts from). */
  readonly resumedFrom: number;

  private constructor(path: string, file: Deno.FsFile, hash: Hash, size: number) {
    this.path = path;
    this.#file = file;
    this.#hash = hash;
    this.#size = size;
    this.resumedFrom = size;
  }

  /** Opens (or creates) the partial at `path`, hashing any bytes it already holds. */
  static async open(path: string): Promise<PartialDownload> {
    const file = await Deno.open(path, { read: true, write: true, create: true, mode: 0o600 });
    try {
      const { hash, size } = await hashFile(path);
      await file.seek(size, Deno.SeekMode.Start);
      return new PartialDownload(path, file, hash, size);
    } catch (err) {
      file.close();
      throw err;
    }
  }

  /** Bytes on disk so far. */
  get size(): number {
    return this.#size;
  }

  /** Appends a chunk to the file and the running hash. */
  async append(chunk: Uint8Array): Promise<void> {
    let written = 0;
    while (written < chunk.length) written += await this.#file.write(chunk.subarray(written));
    this.#hash.update(chunk);
    this.#size += chunk.length;
    this.#unsynced += chunk.length;
    if (this.#unsynced >= SYNC_EVERY) await this.sync();
  }

  /** Drops everything written so far (the server sent the whole body again). */
  async reset(): Promise<void> {
    await this.#file.truncate(0);
    await this.#file.seek(0, Deno.SeekMode.Start);
    this.#hash = createSha256();
    this.#size = 0;
    this.#unsynced = 0;
  }

  /** Flushes written bytes to stable storage. */
  async sync(): Promise<void> {
    await this.#file.sync();
    this.#unsynced = 0;
  }

  /** Finishes the hash; call once, after the last append. */
  digestHex(): string {
    return this.#hash.digest("hex");
  }

  /** Closes the file (the data stays on disk). */
  close(): void {
    this.#file.close();
  }
}
