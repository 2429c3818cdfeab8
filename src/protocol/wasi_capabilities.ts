import { isAbsolute, normalize } from "node:path";

/**
 * The WASI capability vocabulary of `wasm_module{wasi_capabilities[]}`: `fs:read:<dir>`,
 * `fs:write:<dir>`, `env:<NAME>`, `args`, `stdout`, `stderr`, `clock`, `random`.
 */
const CAPABILITY_PATTERN =
  /^(fs:(read|write):[^\0]+|env:[A-Za-z_][A-Za-z0-9_]*|args|stdout|stderr|clock|random)$/;

/** What a module was granted, parsed. */
export interface Grants {
  /** Directories (as written: relative to the instance dir, or absolute) and their access. */
  dirs: { path: string; write: boolean }[];
  env: string[];
  args: boolean;
  stdout: boolean;
  stderr: boolean;
  clock: boolean;
  random: boolean;
}

/** Why a capability list is refused, or undefined when every entry is in the vocabulary. */
export function capabilityProblem(capabilities: string[]): string | undefined {
  for (const capability of capabilities) {
    if (!CAPABILITY_PATTERN.test(capability)) {
      return `unknown WASI capability "${capability}" (known: fs:read:<dir>, fs:write:<dir>, ` +
        "env:<NAME>, args, stdout, stderr, clock, random)";
    }
    if (capability.startsWith("fs:")) {
      const path = capability.split(":").slice(2).join(":");
      if (normalize(path).split("/").includes("..")) {
        return `WASI capability "${capability}": a directory may not go up with ..`;
      }
    }
  }
  return undefined;
}

/** Parses a capability list already checked by {@link capabilityProblem}. */
export function parseGrants(capabilities: string[]): Grants {
  const grants: Grants = {
    dirs: [],
    env: [],
    args: false,
    stdout: false,
    stderr: false,
    clock: false,
    random: false,
  };
  for (const capability of capabilities) {
    const [kind, mode, ...rest] = capability.split(":");
    if (kind === "fs") {
      const path = normalize(rest.join(":")).replace(/\/$/, "") || ".";
      const existing = grants.dirs.find((d) => d.path === path);
      if (existing) existing.write ||= mode === "write";
      else grants.dirs.push({ path, write: mode === "write" });
    } else if (kind === "env") {
      grants.env.push(mode!);
    } else {
      grants[kind as "args" | "stdout" | "stderr" | "clock" | "random"] = true;
    }
  }
  // a read-only grant inside a writable one adds nothing (and Deno cannot revoke write there)
  grants.dirs = grants.dirs.filter((d) =>
    d.write ||
    !grants.dirs.some((w) =>
      w.write && (w.path === "." && !isAbsolute(d.path) || d.path.startsWith(w.path + "/"))
    )
  );
  return grants;
}
