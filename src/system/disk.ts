import { statfsSync } from "node:fs";

/** Size and free space (for unprivileged use) of the filesystem holding a path, in bytes. */
export interface DiskSpace {
  total: number;
  free: number;
}

/** Reads the size and free space of the filesystem that holds `path`. */
export function diskSpace(path: string): DiskSpace {
  const fs = statfsSync(path);
  return { total: fs.blocks * fs.bsize, free: fs.bavail * fs.bsize };
}

/**
 * True when `err` says the disk (or the user's quota) is full: every write path turns that
 * into "disk full" for the deployment or the command, rather than an I/O error or a crash.
 */
export function isDiskFull(err: unknown): boolean {
  const text = err instanceof Error && err.cause ? `${err} ${err.cause}` : String(err);
  return /No space left on device|os error 28|ENOSPC|Disk quota exceeded|os error 122/i.test(text);
}
