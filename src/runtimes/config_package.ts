// @ts-types="@types/tar-stream"
import tar from "tar-stream";
import { basename, dirname, isAbsolute, join, normalize } from "node:path";
import type { DeploymentDirective } from "../protocol/directive.ts";
import type { Instance, InstanceView, RuntimeAdapter } from "./adapter.ts";
import { atomicWriteFile, syncDir } from "../system/atomic_write.ts";

/** What an activation changed, kept in `<instances>/<id>/config_package.json` for deactivation. */
interface Applied {
  target_path: string;
  /** Where the content that was there before now lives (restored on deactivation). */
  previous?: string;
}

/** Entry types a config package may hold; links and devices are refused. */
const ALLOWED_TYPES = new Set(["file", "directory"]);

/** Checks one tar entry name and returns the relative path it extracts to. */
function safeEntryPath(name: string): string {
  if (isAbsolute(name)) throw new Error(`entry "${name}" has an absolute path`);
  const parts = name.split("/");
  if (parts.includes("..")) throw new Error(`entry "${name}" climbs out of the target with ".."`);
  const relative = normalize(name).replace(/\/+$/, "");
  if (relative === "" || relative === ".") {
    throw new Error(`entry "${name}" names the target itself`);
  }
  return relative;
}

/** The blob as a byte stream, gunzipped when it starts with the gzip magic bytes. */
async function tarBytes(blobPath: string): Promise<ReadableStream<Uint8Array>> {
  const head = new Uint8Array(2);
  const probe = await Deno.open(blobPath);
  const n = await probe.read(head);
  probe.close();
  const stream = (await Deno.open(blobPath)).readable;
  const gzipped = n === 2 && head[0] === 0x1f && head[1] === 0x8b;
  return gzipped ? stream.pipeThrough(new DecompressionStream("gzip")) : stream;
}

/** Extracts the tar at `blobPath` into the empty directory `dir`, refusing anything unsafe. */
async function extractInto(blobPath: string, dir: string): Promise<void> {
  const extract = tar.extract();
  const feeding = (async () => {
    for await (const chunk of await tarBytes(blobPath)) {
      if (!extract.write(chunk)) await new Promise((resolve) => extract.once("drain", resolve));
    }
    extract.end();
  })();
  feeding.catch((err) => extract.destroy(err));
  for await (const entry of extract) {
    const { name, type } = entry.header;
    if (!ALLOWED_TYPES.has(type ?? "file")) {
      throw new Error(
        `entry "${name}" is a ${type}: config packages hold only files and directories`,
      );
    }
    const path = join(dir, safeEntryPath(name));
    if (type === "directory") {
      await Deno.mkdir(path, { recursive: true, mode: 0o755 });
      entry.resume();
      continue;
    }
    await Deno.mkdir(dirname(path), { recursive: true, mode: 0o755 });
    const file = await Deno.open(path, {
      write: true,
      createNew: true,
      mode: (entry.header.mode ?? 0o644) & 0o755,
    });
    try {
      for await (const chunk of entry) {
        for (let w = 0; w < chunk.length;) w += await file.write(chunk.subarray(w));
      }
      await file.sync();
    } finally {
      file.close();
    }
  }
  await feeding;
}

/**
 * Removes staging directories an activation of `target` left when the agent died while
 * unpacking (`deno task chaos` found them piling up, one per crash): only an activation
 * creates them, and only one runs per target, so any that exists now is stale.
 */
async function removeStaleStaging(target: string): Promise<void> {
  const prefix = `${basename(target)}.loam-staging-`;
  for await (const entry of Deno.readDir(dirname(target))) {
    if (entry.name.startsWith(prefix)) {
      await Deno.remove(join(dirname(target), entry.name), { recursive: true });
    }
  }
}

/**
 * `config_package`: a tar or tar.gz unpacked to `target_path`. Every entry is checked (no
 * absolute paths, no `..`, no links or devices) while unpacking into a staging directory
 * beside the target; only a complete, clean package replaces the target, by rename. The
 * previous content is kept and restored on deactivation (rollback).
 */
export class ConfigPackageAdapter implements RuntimeAdapter {
  readonly kind = "config_package" as const;
  readonly #instancesDir: string;
  /** Installed packages by instance id, for the API. */
  readonly #installed = new Map<string, InstanceView>();

  constructor(instancesDir: string) {
    this.#instancesDir = instancesDir;
  }

  /** Unpacks into staging; an abort before the swap leaves the target untouched. */
  async activate(
    directive: DeploymentDirective,
    blobPath: string,
    signal: AbortSignal,
  ): Promise<Instance> {
    const type = directive.artifact.artifact_type;
    if (type.type !== "config_package") throw new Error(`not a config package: ${type.type}`);
    const target = type.target_path;
    if (!isAbsolute(target)) throw new Error(`target_path "${target}" must be an absolute path`);
    const instanceId = `cfg-${directive.directive_id}`;
    const stamp = `${Date.now()}-${crypto.randomUUID().slice(0, 8)}`;
    const staging = `${target}.loam-staging-${stamp}`;
    await Deno.mkdir(dirname(target), { recursive: true });
    await removeStaleStaging(target);
    await Deno.mkdir(staging, { mode: 0o755 });
    try {
      await extractInto(blobPath, staging);
    } catch (err) {
      await Deno.remove(staging, { recursive: true });
      throw new Error(`config package rejected: ${(err as Error).message}`);
    }
    if (signal.aborted) {
      await Deno.remove(staging, { recursive: true });
      throw signal.reason;
    }
    const applied: Applied = { target_path: target };
    if (await Deno.lstat(target).then(() => true, () => false)) {
      applied.previous = `${target}.loam-previous-${stamp}`;
    }
    // what deactivation needs is written before anything is swapped: a write that fails (a
    // full disk) leaves the target as it was, never new content that nothing can roll back
    const instanceDir = join(this.#instancesDir, instanceId);
    try {
      await Deno.mkdir(instanceDir, { recursive: true, mode: 0o700 });
      await atomicWriteFile(join(instanceDir, "config_package.json"), JSON.stringify(applied));
    } catch (err) {
      await Deno.remove(staging, { recursive: true });
      throw err;
    }
    if (applied.previous) await Deno.rename(target, applied.previous);
    await Deno.rename(staging, target);
    await syncDir(dirname(target));
    this.#track(directive, instanceId, new Date().toISOString());
    return { instance_id: instanceId, provider: "filesystem" };
  }

  /** Unpacked files stay where they are across restarts: only the listing is rebuilt. */
  async resume(directive: DeploymentDirective, instanceId: string): Promise<void> {
    const stat = await Deno.stat(join(this.#instancesDir, instanceId, "config_package.json"));
    this.#track(directive, instanceId, stat.mtime?.toISOString() ?? null);
  }

  /** Installed packages. */
  list(): InstanceView[] {
    return [...this.#installed.values()];
  }

  #track(directive: DeploymentDirective, instanceId: string, at: string | null): void {
    const type = directive.artifact.artifact_type;
    this.#installed.set(instanceId, {
      instance_id: instanceId,
      directive_id: directive.directive_id,
      adapter: "config_package",
      state: "installed",
      provider: "filesystem",
      started_at: at,
      target_path: type.type === "config_package" ? type.target_path : undefined,
    });
  }

  /** The newer package swapped the target and keeps this one's content as its "previous". */
  async retire(instanceId: string): Promise<void> {
    this.#installed.delete(instanceId);
    await Deno.remove(join(this.#instancesDir, instanceId), { recursive: true }).catch(() => {});
  }

  async deactivate(instanceId: string): Promise<void> {
    this.#installed.delete(instanceId);
    const instanceDir = join(this.#instancesDir, instanceId);
    const applied = JSON.parse(
      await Deno.readTextFile(join(instanceDir, "config_package.json")),
    ) as Applied;
    await Deno.remove(applied.target_path, { recursive: true }).catch(() => {});
    // a crash between writing the record and the swap leaves no previous to bring back
    if (applied.previous) {
      await Deno.rename(applied.previous, applied.target_path).catch((err) => {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      });
    }
    await syncDir(dirname(applied.target_path));
    await Deno.remove(instanceDir, { recursive: true });
  }
}
