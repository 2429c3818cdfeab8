import type { Hash } from "node:crypto";
import { createSha256, hashFile } from "./digest.ts";

/** Bytes gathered before one write: few large writes instead of many small ones. */
const WRITE_BUFFER = 1 << 20;
/** Bytes written between fsyncs of a partial, bounding what power loss can take back. */
const SYNC_EVERY = 64 * 1024 * 1024;

/** Writing the partial failed (disk full, I/O error): the download cannot go on. */
export class PartialWriteError extends Error {
  constructor(path: string, cause: unknown) {
    super(`cannot write ${path}: ${(cause as Error)?.message ?? cause}`, { cause });
    this.name = "PartialWriteError";
  }
}

/**
 * An in-flight download on disk: appends bytes while hashing them, so the digest is ready the
 * moment the last byte lands (no second read). Bytes are gathered into 1 MiB pieces and written
 * synchronously: an awaited write per network chunk reached ~270 MB/s over HTTP, 1 MiB pieces
 * ~510 MB/s; against 32 KiB peer chunks on a busy 2-core box, synchronous 1 MiB writes beat a
 * pipelined async write by ~40% (the write thread competed with both ends' main threads).
 * Opening an existing partial re-hashes what is already there, which is what resuming costs.
 */
export class PartialDownload {
  readonly path: string;
  #file: Deno.FsFile;
  #hash: Hash;
  #size: number;
  #buffer = new Uint8Array(WRITE_BUFFER);
  #fill = 0;
  #unsynced = 0;

  private constructor(path: string, file: Deno.FsFile, hash: Hash, size: number) {
    this.path = path;
    this.#file = file;
    this.#hash = hash;
    this.#size = size;
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

  /** Bytes received so far (written, or buffered and about to be). */
  get size(): number {
    return this.#size;
  }

  /** Appends a chunk to the running hash and the file. */
  append(chunk: Uint8Array): void {
    this.#hash.update(chunk);
    this.#size += chunk.length;
    let offset = 0;
    while (offset < chunk.length) {
      const n = Math.min(chunk.length - offset, WRITE_BUFFER - this.#fill);
      this.#buffer.set(chunk.subarray(offset, offset + n), this.#fill);
      this.#fill += n;
      offset += n;
      if (this.#fill === WRITE_BUFFER) this.#writeBuffer();
    }
  }

  /** Writes the gathered bytes; a failure (disk full, I/O error) is a {@link PartialWriteError}. */
  #writeBuffer(): void {
    const out = this.#buffer.subarray(0, this.#fill);
    try {
      let written = 0;
      while (written < out.length) written += this.#file.writeSync(out.subarray(written));
    } catch (err) {
      // the fetch stops here; a later open re-hashes exactly what reached the disk
      throw new PartialWriteError(this.path, err);
    } finally {
      this.#unsynced += this.#fill;
      this.#fill = 0;
    }
  }

  /** Writes everything appended so far to the file (fsync every 64 MiB of them). */
  async flush(): Promise<void> {
    if (this.#fill > 0) this.#writeBuffer();
    if (this.#unsynced >= SYNC_EVERY) await this.sync();
  }

  /** Drops everything written so far (the source sent the whole blob again). */
  async reset(): Promise<void> {
    this.#fill = 0;
    await this.#file.truncate(0);
    await this.#file.seek(0, Deno.SeekMode.Start);
    this.#hash = createSha256();
    this.#size = 0;
    this.#unsynced = 0;
  }

  /** Flushes all appended bytes to stable storage. */
  async sync(): Promise<void> {
    if (this.#fill > 0) this.#writeBuffer();
    try {
      await this.#file.sync();
    } catch (err) {
      throw new PartialWriteError(this.path, err);
    }
    this.#unsynced = 0;
  }

  /** Finishes the hash; call once, after the last append. */
  digestHex(): string {
    return this.#hash.digest("hex");
  }

  /** Writes what is buffered (best effort) and closes the file; the data stays on disk. */
  async close(): Promise<void> {
    await this.flush().catch(() => {});
    this.#file.close();
  }
}
