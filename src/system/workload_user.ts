import { UserError } from "./errors.ts";

/** The unprivileged account workloads run as. */
export interface WorkloadUser {
  name: string;
  uid: number;
  gid: number;
}

/** Finds `name` in an /etc/passwd text; undefined when it is not there. */
export function findUser(passwd: string, name: string): WorkloadUser | undefined {
  for (const line of passwd.split("\n")) {
    const fields = line.split(":");
    if (fields[0] !== name || fields.length < 4) continue;
    const uid = Number(fields[2]);
    const gid = Number(fields[3]);
    if (Number.isInteger(uid) && Number.isInteger(gid)) return { name, uid, gid };
  }
  return undefined;
}

/**
 * Why `user` cannot reach `dir` (a directory on the way is not searchable by it), or undefined.
 * Checked before a workload starts, so the failure names the directory to fix.
 */
export async function unreachableBy(user: WorkloadUser, dir: string): Promise<string | undefined> {
  const parts = dir.split("/").filter((p) => p !== "");
  for (let i = 0; i < parts.length; i++) {
    const path = "/" + parts.slice(0, i + 1).join("/");
    const info = await Deno.stat(path).catch(() => undefined);
    if (!info || info.mode === null) continue;
    const mode = info.mode;
    const searchable = info.uid === user.uid
      ? (mode & 0o100) !== 0
      : info.gid === user.gid
      ? (mode & 0o010) !== 0
      : (mode & 0o001) !== 0;
    if (!searchable) {
      return `${path} is not searchable by ${user.name} (mode ${(mode & 0o777).toString(8)}): ` +
        `chmod o+x it, move the data dir, or set workloads.user = ""`;
    }
  }
  return undefined;
}

/**
 * The account that native workloads run as: `workloads.user` when the agent runs as root (so a
 * workload cannot read the agent's identity key or tokens); undefined when the agent is not
 * root (workloads run as the agent's own user) or the setting is "" or "root".
 */
export async function resolveWorkloadUser(name: string): Promise<WorkloadUser | undefined> {
  if (Deno.uid() !== 0 || name === "" || name === "root") return undefined;
  const passwd = await Deno.readTextFile("/etc/passwd").catch(() => "");
  const user = findUser(passwd, name);
  if (!user) {
    throw new UserError(
      `workloads.user = "${name}": no such user in /etc/passwd (create it, or set "" to run ` +
        "workloads as root)",
    );
  }
  if (user.uid === 0) throw new UserError(`workloads.user = "${name}" has uid 0: not unprivileged`);
  return user;
}
