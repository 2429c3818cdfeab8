/**
 * @module
 * The host below everything else: data-dir paths and their modes, atomic writes, hardware
 * probe, logging, systemd (unit, sd_notify), CPU architecture names and HTTP helpers. Nothing
 * here knows about deployments, the mesh or the API.
 */

import { dirname, join, resolve } from "node:path";
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
  /** Signed directives and rollback orders in force, as received, handed to late nodes. */
  directives: string;
  instances: string;
  /** The model and agent registry: every signed document this node keeps. */
  registry: string;
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
    directives: join(root, "directives"),
    instances: join(root, "instances"),
    registry: join(root, "registry.json"),
  };
}

/**
 * What is wrong with `path` after `err`, in words a user can act on. Deno refuses paths under
 * /dev, /proc and /sys to a program with named permissions (loam never runs with all of them),
 * and its message would suggest --allow-all; OS errors keep their text without Deno's suffix.
 */
async function whatIsWrong(path: string, err: unknown): Promise<string> {
  if (err instanceof Deno.errors.NotCapable) {
    return `${path} is under /dev, /proc or /sys, which loam may not use (device and kernel files)`;
  }
  if (err instanceof Deno.errors.NotADirectory || err instanceof Deno.errors.AlreadyExists) {
    const file = await firstNonDirectory(path);
    if (file !== undefined) return `${file} is a file, not a directory`;
  }
  const message = err instanceof Error ? err.message : String(err);
  const osText = message.replace(/ \(os error \d+\).*$/s, "");
  const text = osText.charAt(0).toLowerCase() + osText.slice(1);
  if (err instanceof Deno.errors.PermissionDenied) {
    return `${await deepestExisting(path)}: ${text} (loam runs as uid ${Deno.uid()})`;
  }
  return `${path}: ${text}`;
}

/** The first of `path` and its parents, from the top, that exists and is not a directory. */
async function firstNonDirectory(path: string): Promise<string | undefined> {
  const parts = path.split("/").filter((p) => p !== "");
  for (let i = 1; i <= parts.length; i++) {
    const prefix = "/" + parts.slice(0, i).join("/");
    const info = await Deno.stat(prefix).catch(() => undefined);
    if (info === undefined) return undefined;
    if (!info.isDirectory) return prefix;
  }
  return undefined;
}

/** `path` or the nearest parent this process can see: where a refused mkdir was refused. */
async function deepestExisting(path: string): Promise<string> {
  for (let current = path; current !== dirname(current); current = dirname(current)) {
    if (await Deno.stat(current).then(() => true, () => false)) return current;
  }
  return "/";
}

/** Runs one step on `path` of the data dir; a failure is a {@link UserError} saying what is wrong. */
async function step(paths: DataPaths, path: string, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (err) {
    throw new UserError(
      `data dir ${paths.root} is not usable: ${await whatIsWrong(path, err)} ` +
        "(set another with --data-dir or LOAM_DATA_DIR)",
    );
  }
}

/** Proves the data dir takes new files (a read-only mount passes every mkdir of what exists). */
async function proveWritable(paths: DataPaths): Promise<void> {
  const probe = join(paths.root, `.write-test-${crypto.randomUUID()}`);
  await step(paths, paths.root, async () => {
    await Deno.writeTextFile(probe, "");
    await Deno.remove(probe);
  });
}

/**
 * The agent's start: creates the data directory (mode 0700) with api/ and instances/, sets the
 * modes of the data dir and instances/ and proves it is writable; throws a {@link UserError}
 * that says what is wrong with which path otherwise. With `sharedInstances` (native workloads run
 * as another user) the data dir and instances/ are 0711: others may pass through to their own
 * instance dir, but list nothing, and every other entry stays 0700 or 0600.
 */
export async function ensureDataDir(paths: DataPaths, sharedInstances = false): Promise<void> {
  const mode = sharedInstances ? 0o711 : 0o700;
  await step(paths, paths.apiDir, () => Deno.mkdir(paths.apiDir, { recursive: true, mode: 0o700 }));
  await step(paths, paths.root, () => Deno.chmod(paths.root, mode));
  await step(paths, paths.instances, async () => {
    await Deno.mkdir(paths.instances, { recursive: true, mode });
    await Deno.chmod(paths.instances, mode);
  });
  await proveWritable(paths);
}

/**
 * A CLI command's use of the data dir: creates the data dir and api/ where missing (mode 0700)
 * and proves it is writable, but never changes the mode of what exists. The agent sets those
 * modes at start (0711 when native workloads run as another user); a command run beside it that
 * reset them would lock its workloads out of their instance dirs.
 */
export async function openDataDir(paths: DataPaths): Promise<void> {
  await step(paths, paths.apiDir, () => Deno.mkdir(paths.apiDir, { recursive: true, mode: 0o700 }));
  await proveWritable(paths);
}

/**
 * For commands that only read the data dir (token list, status, keys show): fails with what is
 * wrong with its path, as {@link openDataDir} would, instead of Deno's or the OS's words from
 * the first file read there. A data dir that does not exist yet is fine: it holds nothing.
 */
export async function checkDataDir(paths: DataPaths): Promise<void> {
  await step(paths, paths.root, async () => {
    const info = await Deno.stat(paths.root).catch((err) => {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw err;
    });
    if (info !== undefined && !info.isDirectory) throw new Deno.errors.NotADirectory(paths.root);
  });
}
