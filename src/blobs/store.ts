import { join } from "node:path";
import { hashFile } from "./digest.ts";
import { syncDir } from "../system/atomic_write.ts";

/** A verified blob in the store. */
export interface StoredBlob {
  sha256: string;
  size_bytes: number;
  committed_at: string;
}

/** An unfinished download kept for resuming. */
export interface PartialBlob {
  sha256: string;
  bytes: number;
  updated_at: string;
}

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * The content-addressed store under `<data>/blobs`: `sha256/<hex>` holds only verified,
 * read-only blobs; `partial/` in-flight downloads; `quarantine/` blobs that failed re-verification.
 */
export class BlobStore {
  readonly root: string;
  readonly verifiedDir: string;
  readonly partialDir: string;
  readonly quarantineDir: string;

  constructor(root: string) {
    this.root = root;
    this.verifiedDir = join(root, "sha256");
    this.partialDir = join(root, "partial");
    this.quarantineDir = join(root, "quarantine");
  }

  /** Creates the store's directories. */
  async init(): Promise<void> {
    for (const dir of [this.verifiedDir, this.partialDir, this.quarantineDir]) {
      await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    }
  }

  /** Where the verified blob `hex` lives (whether or not it exists). */
  pathOf(hex: string): string {
    return join(this.verifiedDir, hex);
  }

  /** The partial data file, its metadata file and its lock file for `hex`. */
  partialPaths(hex: string): { data: string; meta: string; lock: string } {
    const base = join(this.partialDir, hex);
    return { data: base, meta: `${base}.json`, lock: `${base}.lock` };
  }

  /** True when the verified blob `hex` is present. */
  async has(hex: string): Promise<boolean> {
    try {
      return (await Deno.stat(this.pathOf(hex))).isFile;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return false;
      throw err;
    }
  }

  /**
   * Moves a fully written and verified partial into the store: read-only, commit time as
   * mtime, rename, then fsync of the directory, so a crash leaves no blob or a whole one.
   */
  async commit(hex: string, partialPath: string): Promise<string> {
    const target = this.pathOf(hex);
    const now = new Date();
    await Deno.chmod(partialPath, 0o444);
    await Deno.utime(partialPath, now, now);
    await Deno.rename(partialPath, target);
    await syncDir(this.verifiedDir);
    return target;
  }

  /** Verified blobs, sorted by hash. */
  async list(): Promise<StoredBlob[]> {
    return (await hexFiles(this.verifiedDir)).map(({ name, info }) => ({
      sha256: name,
      size_bytes: info.size,
      committed_at: (info.mtime ?? new Date(0)).toISOString(),
    }));
  }

  /** Unfinished downloads kept for resuming, sorted by hash. */
  async listPartials(): Promise<PartialBlob[]> {
    return (await hexFiles(this.partialDir)).map(({ name, info }) => ({
      sha256: name,
      bytes: info.size,
      updated_at: (info.mtime ?? new Date(0)).toISOString(),
    }));
  }

  /** Deletes a verified blob. */
  async remove(hex: string): Promise<void> {
    await Deno.remove(this.pathOf(hex));
  }

  /** Deletes a partial download with its metadata and lock files. */
  async removePartial(hex: string): Promise<void> {
    for (const path of Object.values(this.partialPaths(hex))) {
      await Deno.remove(path).catch((err) => {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      });
    }
  }

  /** Re-hashes a verified blob; true when its content still matches its name. */
  async verify(hex: string): Promise<boolean> {
    const { hash } = await hashFile(this.pathOf(hex));
    return hash.digest("hex") === hex;
  }

  /** Moves a blob that failed verification out of the store; returns where it went. */
  async quarantine(hex: string): Promise<string> {
    const target = join(this.quarantineDir, `${hex}.${Date.now()}`);
    await Deno.rename(this.pathOf(hex), target);
    return target;
  }
}

/** The files of `dir` named by a 64-digit hex hash, with their stat, sorted by name. */
async function hexFiles(dir: string): Promise<{ name: string; info: Deno.FileInfo }[]> {
  const files: { name: string; info: Deno.FileInfo }[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile || !HEX64.test(entry.name)) continue;
    files.push({ name: entry.name, info: await Deno.stat(join(dir, entry.name)) });
  }
  return files.sort((a, b) => a.name.localeCompare(b.name));
}
