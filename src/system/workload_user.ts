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
