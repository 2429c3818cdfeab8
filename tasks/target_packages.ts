/**
 * What runs loam on one Linux architecture, fetched from the npm registry (the only one these
 * build machines reach) into a cache directory: the official Deno binary for the architecture,
 * and a DENO_DIR holding the project's npm packages as that architecture needs them. Used by
 * `deno task build` for the self-extracting files and by the arm64 smoke.
 * @module
 */
import { join } from "node:path";
import { pathExists } from "./path_exists.ts";

/** An npm architecture name. */
export type NpmArch = "x64" | "arm64";

/** Runs a command; throws with its output when it fails; returns stdout. */
export async function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Promise<string> {
  const out = await new Deno.Command(cmd, { args, ...opts, stdin: "null" }).output();
  const text = new TextDecoder();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}):\n${text.decode(out.stderr)}`);
  }
  return text.decode(out.stdout);
}

/** Builds `final` through `work` (a fresh temp dir next to it), renamed into place at the end. */
export async function buildInto(
  final: string,
  make: (work: string) => Promise<void>,
): Promise<void> {
  const work = `${final}.partial-${Deno.pid}`;
  await Deno.remove(work, { recursive: true }).catch(() => {});
  await Deno.mkdir(work, { recursive: true });
  await make(work);
  await Deno.remove(final, { recursive: true }).catch(() => {});
  await Deno.rename(work, final);
}

/** The npm package of the official Deno binary for `arch` (glibc Linux). */
function denoPackage(arch: NpmArch): string {
  return `@deno/linux-${arch}-glibc`;
}

/**
 * The Deno version to ship for `arch`: the building Deno's own when npm has it for that
 * architecture (the code was checked with it), else the newest older one.
 */
async function pickDenoVersion(arch: NpmArch): Promise<string> {
  const want = Deno.version.deno;
  const pkg = denoPackage(arch);
  const all: string[] = JSON.parse(await run("npm", ["view", pkg, "versions", "--json"]));
  if (all.includes(want)) return want;
  const key = (v: string) => v.split(".").map((n) => n.padStart(6, "0")).join(".");
  const older = all.filter((v) => /^\d+\.\d+\.\d+$/.test(v) && key(v) < key(want)).sort((a, b) =>
    key(a) < key(b) ? -1 : 1
  );
  if (older.length === 0) throw new Error(`npm has no ${pkg} at or below ${want}`);
  return older.at(-1)!;
}

/** The Deno binary for `arch` under `root` (fetched once with `npm pack`), with its version. */
export async function denoForArch(
  root: string,
  arch: NpmArch,
): Promise<{ deno: string; version: string }> {
  const dir = join(root, `deno-${arch}-for-${Deno.version.deno}`);
  if (!pathExists(join(dir, "deno"))) {
    await buildInto(dir, async (work) => {
      const version = await pickDenoVersion(arch);
      const tgz = (await run("npm", ["pack", "--silent", `${denoPackage(arch)}@${version}`], {
        cwd: work,
      })).trim().split("\n").at(-1)!;
      await run("tar", ["-xzf", tgz, "-C", work, "--strip-components=1", "package/deno"], {
        cwd: work,
      });
      await Deno.remove(join(work, tgz));
      await Deno.writeTextFile(join(work, "version"), version);
    });
  }
  return { deno: join(dir, "deno"), version: Deno.readTextFileSync(join(dir, "version")).trim() };
}

/**
 * A DENO_DIR under `root` with main.ts's npm packages installed for linux/`arch` from the
 * project's deno.lock (`deno install --os linux --arch`), redone when deno.lock changes.
 */
export async function npmForArch(root: string, project: string, arch: NpmArch): Promise<string> {
  const dir = join(root, `deno-dir-${arch}`);
  const lock = await crypto.subtle.digest(
    "SHA-256",
    await Deno.readFile(join(project, "deno.lock")),
  );
  const stamp = Array.from(new Uint8Array(lock), (b) => b.toString(16).padStart(2, "0")).join("");
  const stampFile = join(dir, "loam-deno-lock.sha256");
  if (!pathExists(stampFile) || Deno.readTextFileSync(stampFile).trim() !== stamp) {
    await Deno.mkdir(dir, { recursive: true });
    await run(
      "deno",
      ["install", "--os", "linux", "--arch", arch, "--frozen", "--quiet", "-e", "main.ts"],
      { cwd: project, env: { DENO_DIR: dir } },
    );
    await Deno.writeTextFile(stampFile, stamp + "\n");
  }
  return dir;
}
