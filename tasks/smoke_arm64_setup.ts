/**
 * The arm64 kit for `deno task smoke:arm64`, built once under a cache directory the task owns
 * and never touching the host's packages: qemu-aarch64 from Debian trixie (bookworm's 7.2
 * crashes onnxruntime's CPU probe), an arm64 glibc sysroot from bookworm, the arm64 Deno from
 * npm, and a private DENO_DIR holding the project's arm64 npm packages. Also binfmt_misc, so
 * arm64 children of arm64 programs (node-llama-cpp's test child, the WASM runner) run under the
 * same qemu.
 * @module
 */
import { dirname, join } from "node:path";
import { pathExists } from "./path_exists.ts";
import { buildInto, denoForArch, npmForArch, run } from "./target_packages.ts";

/** Everything needed to run the agent as arm64 code. */
export interface Arm64Kit {
  /** Static x86_64 qemu-aarch64. */
  qemu: string;
  /** `qemu-aarch64 --version`'s first line. */
  qemuVersion: string;
  /** Root of the arm64 glibc (QEMU_LD_PREFIX). */
  sysroot: string;
  /** The arm64 `deno` binary. */
  deno: string;
  /** Its version (the host's when npm has it, else the closest older one). */
  denoVersion: string;
  /** DENO_DIR with the project's arm64 npm packages. */
  denoDir: string;
}

const DEBIAN = "http://deb.debian.org/debian";
const KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg";
const SYSROOT_PACKAGES = ["libc6", "libgcc-s1", "libstdc++6"];

/** The cache root: `$LOAM_ARM64_CACHE`, else `$XDG_CACHE_HOME/loam-arm64`, else ~/.cache. */
export function cacheRoot(): string {
  const own = Deno.env.get("LOAM_ARM64_CACHE");
  if (own) return own;
  const xdg = Deno.env.get("XDG_CACHE_HOME") ?? join(Deno.env.get("HOME") ?? "/root", ".cache");
  return join(xdg, "loam-arm64");
}

/** `apt-get download` of `packages` with a private sources list, lists dir and cache. */
async function aptDownload(dir: string, suite: string, arch: string, packages: string[]) {
  const apt = join(dir, "apt");
  await Deno.mkdir(join(apt, "lists", "partial"), { recursive: true });
  await Deno.writeTextFile(
    join(apt, "sources.list"),
    `deb [arch=${arch} signed-by=${KEYRING}] ${DEBIAN} ${suite} main\n`,
  );
  const options = [
    `Dir::Etc::sourcelist=${join(apt, "sources.list")}`,
    "Dir::Etc::sourceparts=-",
    `Dir::State::Lists=${join(apt, "lists")}`,
    `Dir::Cache=${join(apt, "cache")}`,
    `APT::Architecture=${arch}`,
    `APT::Architectures::=${arch}`,
    "APT::Sandbox::User=root",
  ].flatMap((o) => ["-o", o]);
  await run("apt-get", ["-q", ...options, "update"]);
  await run("apt-get", ["-q", ...options, "download", ...packages], { cwd: dir });
  return [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".deb")).map((e) =>
    join(dir, e.name)
  );
}

async function ensureQemu(root: string): Promise<string> {
  const dir = join(root, "qemu");
  if (!pathExists(join(dir, "qemu-aarch64"))) {
    await buildInto(dir, async (work) => {
      const [deb] = await aptDownload(join(work, "dl"), "trixie", "amd64", ["qemu-user"]);
      const unpack = new Deno.Command("dpkg-deb", {
        args: ["--fsys-tarfile", deb!],
        stdout: "piped",
      })
        .spawn();
      const tar = new Deno.Command("tar", {
        args: ["-x", "-C", join(work, "dl"), "./usr/bin/qemu-aarch64"],
        stdin: "piped",
      }).spawn();
      await unpack.stdout.pipeTo(tar.stdin);
      const [a, b] = await Promise.all([unpack.status, tar.status]);
      if (!a.success || !b.success) throw new Error(`unpacking ${deb} failed`);
      await Deno.rename(join(work, "dl", "usr", "bin", "qemu-aarch64"), join(work, "qemu-aarch64"));
      await Deno.remove(join(work, "dl"), { recursive: true });
    });
  }
  return join(dir, "qemu-aarch64");
}

async function ensureSysroot(root: string): Promise<string> {
  const dir = join(root, "sysroot");
  if (!pathExists(join(dir, "lib", "ld-linux-aarch64.so.1"))) {
    await buildInto(dir, async (work) => {
      const dl = `${work}.dl`;
      await Deno.remove(dl, { recursive: true }).catch(() => {});
      await Deno.mkdir(dl);
      for (const deb of await aptDownload(dl, "bookworm", "arm64", SYSROOT_PACKAGES)) {
        await run("dpkg-deb", ["-x", deb, work]);
      }
      await Deno.remove(dl, { recursive: true });
    });
  }
  return dir;
}

/** What is missing to build the kit here (tools, or non-x86_64 Linux), or undefined. */
export function kitBlocker(root: string): string | undefined {
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
    return `this smoke emulates aarch64 on x86_64 Linux; this host is ${Deno.build.target}`;
  }
  const complete = pathExists(join(root, "qemu", "qemu-aarch64")) &&
    pathExists(join(root, "sysroot", "lib", "ld-linux-aarch64.so.1")) &&
    pathExists(join(root, `deno-arm64-for-${Deno.version.deno}`, "deno"));
  if (complete) return undefined;
  const path = (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":");
  const missing = ["apt-get", "dpkg-deb", "tar", "npm"].filter((tool) =>
    !path.some((dir) => pathExists(join(dir, tool)))
  );
  if (missing.length > 0) return `the arm64 kit is not cached and ${missing.join(", ")} missing`;
  if (!pathExists(KEYRING)) return `the arm64 kit is not cached and ${KEYRING} is missing`;
  return undefined;
}

/** Builds what is missing of the kit under `root` (each part once) and returns it. */
export async function ensureKit(root: string, project: string): Promise<Arm64Kit> {
  await Deno.mkdir(root, { recursive: true });
  const [qemu, sysroot, { deno, version }, denoDir] = await Promise.all([
    ensureQemu(root),
    ensureSysroot(root),
    denoForArch(root, "arm64"),
    npmForArch(root, project, "arm64"),
  ]);
  const qemuVersion = (await run(qemu, ["--version"])).split("\n")[0]!;
  return { qemu, qemuVersion, sysroot, deno, denoVersion: version, denoDir };
}

const BINFMT = "/proc/sys/fs/binfmt_misc";
const AARCH64_MAGIC =
  "\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00";
const AARCH64_MASK =
  "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff";

/** The binfmt_misc state for the run: usable or why not, and how to undo what was done. */
export interface Binfmt {
  /** Whether arm64 programs exec'd by arm64 programs run (under this kit's qemu or another). */
  ok: boolean;
  /** What was done or why it is not usable. */
  note: string;
  /** Unregisters and unmounts what this run added. */
  undo(): Promise<void>;
}

/**
 * qemu-aarch64's built-in ELF interpreter prefix (its `-L` default), where it looks for the
 * arm64 loader when QEMU_LD_PREFIX is not set.
 */
const INTERP_PREFIX = "/usr/gnemul/qemu-aarch64";

/**
 * Whether the arm64 deno starts when exec'd directly (i.e. through binfmt), both with
 * QEMU_LD_PREFIX and with a clean environment: the agent starts the WASM runner (an arm64 Deno)
 * with only PATH, HOME and DENO_DIR, so there qemu must find the sysroot by its built-in prefix.
 */
async function directExecWorks(kit: Arm64Kit): Promise<boolean> {
  const envs: Record<string, string>[] = [{ QEMU_LD_PREFIX: kit.sysroot }, {}];
  for (const env of envs) {
    try {
      const out = await new Deno.Command(kit.deno, {
        args: ["--version"],
        clearEnv: true,
        env: { PATH: "/usr/bin:/bin", ...env },
        stdout: "piped",
        stderr: "null",
      }).output();
      if (!out.success || !new TextDecoder().decode(out.stdout).includes("aarch64")) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/** Whether anything (a dangling link included) is at `path`. */
function occupied(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Runs a shell snippet with positional arguments (Deno allows /proc/sys only with -A). */
async function sh(script: string, ...args: string[]): Promise<{ ok: boolean; err: string }> {
  const out = await new Deno.Command("sh", {
    args: ["-c", script, "sh", ...args],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  return { ok: out.success, err: new TextDecoder().decode(out.stderr).trim() };
}

/**
 * Registers this kit's qemu for aarch64 ELF files (flags FPC: the interpreter is opened now, so
 * the entry works from any mount namespace) under a name of this process, mounting binfmt_misc
 * first if needed, and links qemu's built-in prefix ({@link INTERP_PREFIX}, when free) to the
 * sysroot for arm64 children started with a clean environment. As root only; otherwise it
 * reports whether an existing registration works.
 */
export async function setUpBinfmt(kit: Arm64Kit): Promise<Binfmt> {
  const steps: (() => Promise<unknown>)[] = [];
  const undo = async () => {
    for (const step of steps.splice(0).reverse()) await step().catch(() => {});
  };
  if (Deno.uid() !== 0) {
    const ok = await directExecWorks(kit);
    return {
      ok,
      note: ok
        ? "not root: using the aarch64 binfmt registration already present"
        : "not root, so binfmt_misc cannot be registered, and no aarch64 registration works " +
          `(with QEMU_LD_PREFIX, and with a clean environment through ${INTERP_PREFIX})`,
      undo,
    };
  }
  if (!(await sh(`test -e "$1/register"`, BINFMT)).ok) {
    const mount = await sh(`mount -t binfmt_misc binfmt_misc "$1"`, BINFMT);
    if (!mount.ok) return { ok: false, note: `cannot mount binfmt_misc: ${mount.err}`, undo };
    steps.push(() => sh(`umount "$1"`, BINFMT));
  }
  const name = `loam-aarch64-${Deno.pid}`;
  const entry = `:${name}:M::${AARCH64_MAGIC}:${AARCH64_MASK}:${kit.qemu}:FPC`;
  const registered = await sh(`printf '%s' "$2" > "$1/register"`, BINFMT, entry);
  if (!registered.ok) {
    await undo();
    return { ok: false, note: `cannot register binfmt_misc: ${registered.err}`, undo };
  }
  steps.push(() => sh(`echo -1 > "$1/$2"`, BINFMT, name));
  let linked = "";
  if (!occupied(INTERP_PREFIX)) {
    const parent = dirname(INTERP_PREFIX);
    try {
      if (!occupied(parent)) {
        await Deno.mkdir(parent);
        steps.push(() => Deno.remove(parent));
      }
      await Deno.symlink(kit.sysroot, INTERP_PREFIX);
      steps.push(() => Deno.remove(INTERP_PREFIX));
      linked = ` and ${INTERP_PREFIX} -> the sysroot`;
    } catch (err) {
      linked = ` (linking ${INTERP_PREFIX} failed: ${(err as Error).message})`;
    }
  }
  const ok = await directExecWorks(kit);
  return {
    ok,
    note: ok
      ? `registered binfmt_misc entry ${name}${linked} (removed at exit)`
      : `registered ${name}${linked}, but exec'ing the arm64 deno still fails ` +
        `(with QEMU_LD_PREFIX, or with a clean environment through ${INTERP_PREFIX})`,
    undo,
  };
}
