import { join, resolve } from "node:path";
import { UserError } from "./errors.ts";

/** Where each piece of state lives under the data directory. */
export interface DataPaths {
  root: string;
  identityKey: string;
  apiDir: string;
  adminToken: string;
  tokens: string;
  /** The address the API actually listens on (written at start; useful with port 0). */
  apiAddress: string;
  blobs: string;
  deployments: string;
  /** Ids of every directive seen (targeted or not), for replay protection across restarts. */
  seenDirectives: string;
  instances: string;
}

/**
 * The data directory: the configured one, else /var/lib/loam as root, else
 * $XDG_STATE_HOME/loam or ~/.local/state/loam.
 */
export function resolveDataDir(configured: string | undefined): string {
  if (configured !== undefined) return resolve(configured);
  if (Deno.uid() === 0) return "/var/lib/loam";
  const stateHome = Deno.env.get("XDG_STATE_HOME");
  if (stateHome) return join(stateHome, "loam");
  const home = Deno.env.get("HOME");
  if (!home) throw new UserError("cannot choose a data dir: HOME is not set; use --data-dir");
  return join(home, ".local", "state", "loam");
}

/** The layout of the data directory chosen by the `data.dir` setting (see {@link resolveDataDir}). */
export function dataPathsFor(configured: string | undefined): DataPaths {
  return dataPaths(resolveDataDir(configured));
}

/** The fixed layout of a data directory. */
export function dataPaths(root: string): DataPaths {
  const apiDir = join(root, "api");
  return {
    root,
    identityKey: join(root, "identity.key"),
    apiDir,
    adminToken: join(apiDir, "admin.token"),
    tokens: join(apiDir, "tokens.json"),
    apiAddress: join(apiDir, "address"),
    blobs: join(root, "blobs"),
    deployments: join(root, "deployments"),
    seenDirectives: join(root, "seen-directives.json"),
    instances: join(root, "instances"),
  };
}

/**
 * Creates the data directory (mode 0700) and its api/ subdirectory and proves it is writable;
 * throws a {@link UserError} that names the directory otherwise. With `sharedInstances` (native
 * workloads run as another user) the data dir and instances/ are 0711: others may pass through
 * to their own instance dir, but list nothing, and every other entry stays 0700 or 0600.
 */
export async function ensureDataDir(paths: DataPaths, sharedInstances = false): Promise<void> {
  try {
    await Deno.mkdir(paths.apiDir, { recursive: true, mode: 0o700 });
    const mode = sharedInstances ? 0o711 : 0o700;
    await Deno.chmod(paths.root, mode);
    await Deno.mkdir(paths.instances, { recursive: true, mode });
    await Deno.chmod(paths.instances, mode);
    const probe = `${paths.root}/.write-test-${crypto.randomUUID()}`;
    await Deno.writeTextFile(probe, "");
    await Deno.remove(probe);
  } catch (err) {
    throw new UserError(
      `data dir ${paths.root} is not usable: ${
        (err as Error).message
      } (set another with --data-dir or LOAM_DATA_DIR)`,
    );
  }
}
