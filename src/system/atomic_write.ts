import { dirname, join } from "node:path";
import { UserError } from "./errors.ts";

/** Options for {@link atomicWriteFile}. */
export interface AtomicWriteOptions {
  /** File mode of the result (default 0o644). */
  mode?: number;
}

/**
 * Writes `data` to `path` so that a crash at any moment leaves either the old file or the
 * complete new one: temp file in the same directory, fsync, rename, fsync of the directory.
 */
export async function atomicWriteFile(
  path: string,
  data: Uint8Array | string,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const dir = dirname(path);
  const tmp = join(dir, `.${crypto.randomUUID()}.tmp`);
  const file = await Deno.open(tmp, { write: true, createNew: true, mode: options.mode ?? 0o644 });
  try {
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.sync();
  } catch (err) {
    file.close();
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  file.close();
  try {
    await Deno.chmod(tmp, options.mode ?? 0o644);
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  await syncDir(dir);
}

/** fsyncs a directory so that a rename or create in it survives power loss. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await Deno.open(dir, { read: true });
  try {
    await handle.sync();
  } finally {
    handle.close();
  }
}

/**
 * Throws a {@link UserError} when anything is at `path`: key files are never replaced by a new
 * one, since the old may be the only copy of an identity or a fleet's key.
 */
export async function refuseToOverwrite(path: string, what: string): Promise<void> {
  try {
    await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  throw new UserError(`${path} already exists; refusing to overwrite ${what}`);
}
