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
