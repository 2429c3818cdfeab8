/**
 * The payload of a self-extracting loam file for one target, assembled in a directory:
 *
 *   deno                the official Deno binary for the target (npm @deno/linux-<arch>-glibc)
 *   loam.js             the agent as one minified module (deno bundle); the two native addons
 *                       stay external and are imported through import_map.json
 *   wasm_runner.js      the WASM runner, bundled on its own (it runs as its own process)
 *   import_map.json     onnxruntime-node and node-llama-cpp → their npm: specifiers
 *   deno_dir/npm/       only those two packages and what they load, for this target
 *   payload.json        version, target, Deno version, build time
 *   MANIFEST.sha256     every file's hash, for `loam version --verify`
 *
 * Deno resolves the npm graph from each package's registry.json even with --cached-only, so the
 * registry.json files are cut down to the versions shipped, and dependencies that are not
 * shipped (other platforms' builds, CUDA unless asked, optional peers) are taken out of them.
 * @module
 */
import { join, relative } from "node:path";
import { hashFile } from "../src/blobs/digest.ts";
import denoConfig from "../deno.json" with { type: "json" };
import { excludedPaths, type Target } from "./compile_plan.ts";
import { denoForArch, type NpmArch, npmForArch, run } from "./target_packages.ts";
import { pathExists } from "./path_exists.ts";

/** The npm packages the bundle leaves external (native addons that load files beside them). */
const EXTERNAL = ["onnxruntime-node", "node-llama-cpp"] as const;

/** What the payload is built from. */
export interface PayloadPlan {
  target: Target;
  /** The version the file reports. */
  version: string;
  cuda: boolean;
  /** Where the target's Deno and npm packages are cached between builds. */
  cacheRoot: string;
  project: string;
}

/** What {@link assemblePayload} produced. */
export interface Payload {
  denoVersion: string;
  /** Bytes per part, for the build's report. */
  parts: Record<string, number>;
}

/** The npm architecture of a target. */
function npmArch(target: Target): NpmArch {
  return target.startsWith("x86_64") ? "x64" : "arm64";
}

type Lock = {
  npm: Record<
    string,
    { integrity?: string; dependencies?: string[]; optionalDependencies?: string[] }
  >;
};

/** `name@version[_peers]` → [name, version]. */
function splitKey(key: string): [string, string] {
  const at = key.indexOf("@", 1);
  return [key.slice(0, at), key.slice(at + 1).split("_")[0]!];
}

/** The lock key a dependency entry (`name` or `name@version`) refers to. */
function lockKeyOf(lock: Lock, entry: string): string | undefined {
  if (entry.indexOf("@", 1) > 0) return entry in lock.npm ? entry : undefined;
  return Object.keys(lock.npm).find((key) => splitKey(key)[0] === entry);
}

/**
 * The packages (name → versions) the externals need on this target: their dependencies from
 * deno.lock, and those optional ones the target's install has and the plan does not leave out.
 */
function shippedPackages(
  lock: Lock,
  registry: string,
  excluded: string[],
): Map<string, Set<string>> {
  const shipped = new Map<string, Set<string>>();
  const isExcluded = (path: string) => excluded.includes(path);
  const queue = EXTERNAL.map((name) => lockKeyOf(lock, `${name}@${versionOf(name)}`)!);
  while (queue.length > 0) {
    const key = queue.pop()!;
    const [name, version] = splitKey(key);
    if (shipped.get(name)?.has(version)) continue;
    shipped.set(name, (shipped.get(name) ?? new Set()).add(version));
    const entry = lock.npm[key] ?? {};
    for (const dep of entry.dependencies ?? []) {
      const depKey = lockKeyOf(lock, dep);
      if (depKey) queue.push(depKey);
    }
    for (const dep of entry.optionalDependencies ?? []) {
      const depKey = lockKeyOf(lock, dep);
      if (!depKey) continue;
      const path = join(registry, ...splitKey(depKey));
      if (pathExists(path) && !isExcluded(path)) queue.push(depKey);
    }
  }
  return shipped;
}

/** The version deno.json pins for an npm import (`npm:name@version`). */
function versionOf(name: string): string {
  const spec = (denoConfig.imports as Record<string, string>)[name]!;
  return spec.slice(spec.lastIndexOf("@") + 1).replace(/^\^/, "");
}

/** The package.json fields Deno's npm resolver reads from a registry's version entry. */
const MANIFEST_FIELDS = [
  "name",
  "version",
  "dependencies",
  "optionalDependencies",
  "peerDependencies",
  "peerDependenciesMeta",
  "os",
  "cpu",
  "bin",
  "scripts",
  "engines",
];

/**
 * Writes `<name>/registry.json` as the registry would answer for the shipped versions alone,
 * from each version's package.json (a lock-driven install keeps no registry.json), without the
 * optional dependencies and optional peers that are not shipped.
 */
async function registryJson(
  packagesDir: string,
  name: string,
  versions: Set<string>,
  shipped: Map<string, Set<string>>,
  integrity: (name: string, version: string) => string | undefined,
): Promise<void> {
  const entries: Record<string, Record<string, unknown>> = {};
  for (const version of versions) {
    const pkg = JSON.parse(
      await Deno.readTextFile(join(packagesDir, name, version, "package.json")),
    );
    const entry: Record<string, unknown> = {};
    for (const field of MANIFEST_FIELDS) if (pkg[field] !== undefined) entry[field] = pkg[field];
    const optional = { ...(pkg.optionalDependencies ?? {}) };
    for (const dep of Object.keys(optional)) if (!shipped.has(dep)) delete optional[dep];
    entry.optionalDependencies = optional;
    if (pkg.dependencies) {
      entry.dependencies = Object.fromEntries(
        Object.entries(pkg.dependencies).filter(([dep]) =>
          !(dep in (pkg.optionalDependencies ?? {})) || dep in optional
        ),
      );
    }
    const peers = { ...(pkg.peerDependencies ?? {}) };
    for (const dep of Object.keys(peers)) {
      if (pkg.peerDependenciesMeta?.[dep]?.optional && !shipped.has(dep)) delete peers[dep];
    }
    entry.peerDependencies = peers;
    const base = name.split("/").at(-1);
    entry.dist = {
      tarball: `https://registry.npmjs.org/${name}/-/${base}-${version}.tgz`,
      integrity: integrity(name, version),
    };
    entries[version] = entry;
  }
  const latest = [...versions].sort().at(-1)!;
  const target = join(packagesDir, name, "registry.json");
  await Deno.writeTextFile(
    target,
    JSON.stringify({ name, "dist-tags": { latest }, versions: entries }),
  );
}

/** Copies the shipped packages of `sourceDir` (a DENO_DIR) into `targetDir`'s npm cache. */
async function copyPackages(
  project: string,
  sourceDir: string,
  targetDir: string,
  target: Target,
  cuda: boolean,
): Promise<void> {
  const from = join(sourceDir, "npm", "registry.npmjs.org");
  const to = join(targetDir, "npm", "registry.npmjs.org");
  const excluded = excludedPaths(sourceDir, target, cuda);
  const lock = JSON.parse(await Deno.readTextFile(join(project, "deno.lock"))) as Lock;
  const shipped = shippedPackages(lock, from, excluded);
  const integrity = (name: string, version: string) =>
    Object.entries(lock.npm).find(([key]) => {
      const [n, v] = splitKey(key);
      return n === name && v === version;
    })?.[1].integrity;
  for (const [name, versions] of shipped) {
    for (const version of versions) {
      await Deno.mkdir(join(to, name), { recursive: true });
      await run("cp", ["-a", join(from, name, version), join(to, name, version)]);
    }
    await registryJson(to, name, versions, shipped, integrity);
  }
  // parts of shipped packages for other platforms (onnxruntime-node's other binaries)
  for (const path of excluded) {
    const copy = join(to, relative(from, path));
    if (pathExists(copy)) await Deno.remove(copy, { recursive: true });
  }
}

/** Hex SHA-256 of a file, streamed (the payload's Deno binary is ~100 MB). */
export async function sha256OfFile(path: string): Promise<string> {
  return (await hashFile(path)).hash.digest("hex");
}

/** Every regular file under `dir`, relative, sorted. */
async function filesUnder(dir: string, prefix = ""): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(join(dir, prefix))) {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory) files.push(...await filesUnder(dir, path));
    else if (entry.isFile) files.push(path);
  }
  return files.sort();
}

/** Bytes under `path`. */
async function bytesUnder(path: string): Promise<number> {
  const info = await Deno.stat(path);
  if (!info.isDirectory) return info.size;
  let total = 0;
  for (const file of await filesUnder(path)) total += (await Deno.stat(join(path, file))).size;
  return total;
}

/** Fills `work` (an empty directory) with the payload for `plan.target`. */
export async function assemblePayload(work: string, plan: PayloadPlan): Promise<Payload> {
  const arch = npmArch(plan.target);
  const [{ deno, version: denoVersion }, npmDir] = await Promise.all([
    denoForArch(plan.cacheRoot, arch),
    npmForArch(plan.cacheRoot, plan.project, arch),
  ]);
  await Deno.copyFile(deno, join(work, "deno"));
  await Deno.chmod(join(work, "deno"), 0o755);
  const bundle = (entry: string, output: string, external: readonly string[]) =>
    run("deno", [
      "bundle",
      "--quiet",
      "--platform",
      "deno",
      "--minify",
      ...external.flatMap((name) => ["--external", name]),
      "-o",
      join(work, output),
      entry,
    ], { cwd: plan.project });
  // node-llama-cpp's optional reflink binaries would be resolved although it stays external
  await bundle("main.ts", "loam.js", [...EXTERNAL, "@reflink/*"]);
  await bundle("src/runtimes/wasm_runner.ts", "wasm_runner.js", []);
  const imports = Object.fromEntries(
    EXTERNAL.map((name) => [name, `npm:${name}@${versionOf(name)}`]),
  );
  await Deno.writeTextFile(join(work, "import_map.json"), JSON.stringify({ imports }, null, 2));
  await copyPackages(plan.project, npmDir, join(work, "deno_dir"), plan.target, plan.cuda);
  await Deno.writeTextFile(
    join(work, "payload.json"),
    JSON.stringify(
      {
        kind: "sfx",
        version: plan.version,
        target: plan.target,
        deno_version: denoVersion,
        built_at: new Date().toISOString(),
      },
      null,
      2,
    ),
  );
  const lines = [];
  for (const file of await filesUnder(work)) {
    lines.push(`${await sha256OfFile(join(work, file))}  ${file}`);
  }
  await Deno.writeTextFile(join(work, "MANIFEST.sha256"), lines.join("\n") + "\n");
  const parts: Record<string, number> = {};
  for (const part of ["deno", "loam.js", "wasm_runner.js", "deno_dir"]) {
    parts[part] = await bytesUnder(join(work, part));
  }
  return { denoVersion, parts };
}
