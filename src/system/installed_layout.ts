import { dirname, join } from "node:path";
import type { InstallStep } from "./service_steps.ts";

/** The paths of an installed layout (see {@link INSTALLED}). */
export interface InstalledLayout {
  binDir: string;
  current: string;
  previous: string;
  executable: string;
  pathLink: string;
}

/**
 * Where an installed loam lives: every version in the service's state dir, which
 * `ProtectSystem=strict` leaves writable, so the agent can later put a new version beside the
 * running one and switch `current` (the self-update issue builds on this):
 *
 *   /var/lib/loam/bin/<version>/loam   each installed file
 *   /var/lib/loam/bin/current          → <version> (the unit runs current/loam)
 *   /var/lib/loam/bin/previous         → the version current pointed at before
 *   /usr/local/bin/loam                → /var/lib/loam/bin/current/loam, for shells
 */
export const INSTALLED: InstalledLayout = {
  binDir: "/var/lib/loam/bin",
  current: "/var/lib/loam/bin/current",
  previous: "/var/lib/loam/bin/previous",
  /** What the unit's ExecStart runs. */
  executable: "/var/lib/loam/bin/current/loam",
  /** The link on PATH. */
  pathLink: "/usr/local/bin/loam",
};

/** Replaces (or creates) symlink `path` → `target` by rename, so it is never missing. */
export async function pointLink(path: string, target: string): Promise<void> {
  const temp = `${path}.loam-new`;
  await Deno.remove(temp).catch(() => {});
  await Deno.symlink(target, temp);
  await Deno.rename(temp, path);
}

/**
 * Copies the loam file `source` to `<dir>/loam` (temp, fsync, mode 0755, rename), so a crash
 * leaves the old file or the whole new one: `loam install` and a self-update both use it.
 */
export async function installVersionFile(source: string, dir: string): Promise<void> {
  const file = join(dir, "loam");
  await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
  const temp = `${file}.loam-new`;
  await Deno.copyFile(source, temp);
  const handle = await Deno.open(temp, { write: true });
  try {
    await handle.sync();
  } finally {
    handle.close();
  }
  await Deno.chmod(temp, 0o755);
  await Deno.rename(temp, file);
}

/**
 * The steps that put `source` (a loam file of `version`) into the installed layout: the file
 * copied (temp + rename) to bin/<version>/loam, `previous` set to what `current` pointed at
 * when that was another version, `current` switched, and the PATH link made.
 */
export function installFileSteps(
  source: string,
  version: string,
  layout: InstalledLayout = INSTALLED,
): InstallStep[] {
  if (!/^[A-Za-z0-9._+-]{1,64}$/.test(version) || version === "current" || version === "previous") {
    throw new Error(`version "${version}" cannot name a directory of ${layout.binDir}`);
  }
  const dir = join(layout.binDir, version);
  const file = join(dir, "loam");
  return [
    {
      describe: `copy ${source} to ${file} (mode 0755)`,
      run: () => installVersionFile(source, dir),
    },
    {
      describe: `point ${layout.current} at ${version} (the version it pointed at becomes ` +
        `${layout.previous})`,
      run: async () => {
        const before = await Deno.readLink(layout.current).catch(() => undefined);
        if (before !== undefined && before !== version) {
          await pointLink(layout.previous, before);
        }
        await pointLink(layout.current, version);
      },
    },
    {
      describe: `link ${layout.pathLink} to ${layout.executable}`,
      run: async () => {
        await Deno.mkdir(dirname(layout.pathLink), { recursive: true });
        await pointLink(layout.pathLink, layout.executable);
      },
    },
  ];
}
