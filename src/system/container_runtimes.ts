import { join } from "node:path";

/** Programs that mean a container runtime is installed, and the runtime they stand for. */
const RUNTIME_PROGRAMS: [program: string, runtime: string][] = [
  ["podman", "podman"],
  ["docker", "docker"],
  ["nerdctl", "containerd"],
  ["ctr", "containerd"],
];

/** Container runtimes whose CLI is on PATH (podman, docker, containerd), without running them. */
export async function detectContainerRuntimes(
  path = Deno.env.get("PATH") ?? "",
): Promise<string[]> {
  const found = new Set<string>();
  for (const [program, runtime] of RUNTIME_PROGRAMS) {
    for (const dir of path.split(":").filter((d) => d !== "")) {
      const info = await Deno.stat(join(dir, program)).catch(() => undefined);
      if (info?.isFile && (info.mode ?? 0) & 0o111) {
        found.add(runtime);
        break;
      }
    }
  }
  return [...found].sort();
}
