import type { LogLine } from "./log_ring.ts";

/** The CLI program for each runtime a directive can name (they share docker's command set). */
export const RUNTIME_PROGRAMS = { podman: "podman", docker: "docker", containerd: "nerdctl" };

/** A container runtime's name in directives. */
export type ContainerRuntime = keyof typeof RUNTIME_PROGRAMS;

/** What `inspect` tells about a container. */
export interface ContainerState {
  status: string;
  running: boolean;
  exitCode: number;
  pid: number;
  error: string;
  /** Its labels: whose container it is (loam's agent and instance labels). */
  labels: Record<string, string>;
}

const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/** `1.5MiB` or `745.5kB` (docker's stats) in bytes. */
export function humanBytes(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)([kmgt]?i?b)$/i.exec(text);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  return m && unit ? Math.round(Number(m[1]) * unit) : undefined;
}

/** A failed CLI call, with the runtime's own words. */
class ContainerCliError extends Error {
  constructor(program: string, args: string[], code: number, stderr: string) {
    const said = stderr.trim().split("\n").filter((l) => l !== "").at(-1) ?? "";
    super(`${program} ${args[0]} failed (exit ${code}): ${said}`);
    this.name = "ContainerCliError";
  }
}

/**
 * One container runtime's CLI (podman, docker, or containerd's nerdctl), called with the global
 * flags from config (e.g. podman's --root/--runroot) and the agent's environment.
 */
export class ContainerCli {
  readonly runtime: ContainerRuntime;
  readonly #program: string;
  readonly #globalArgs: string[];

  constructor(runtime: ContainerRuntime, globalArgs: string[]) {
    this.runtime = runtime;
    this.#program = RUNTIME_PROGRAMS[runtime];
    this.#globalArgs = globalArgs;
  }

  /**
   * Runs a subcommand; resolves with stdout, rejects with ContainerCliError. An abort of
   * `signal` kills the CLI (an activation that is cancelled does not wait for a slow load).
   */
  async call(args: string[], signal?: AbortSignal): Promise<string> {
    const out = await this.#run(args, 120_000, signal);
    if (out.code !== 0) throw new ContainerCliError(this.#program, args, out.code, out.stderr);
    return out.stdout;
  }

  /** Runs a subcommand whose failure is expected sometimes; resolves with its exit code. */
  async try(args: string[], signal?: AbortSignal): Promise<number> {
    return (await this.#run(args, 120_000, signal)).code;
  }

  async #run(args: string[], timeoutMs: number, signal?: AbortSignal) {
    signal?.throwIfAborted();
    const timeout = AbortSignal.timeout(timeoutMs);
    let out: Deno.CommandOutput;
    try {
      out = await new Deno.Command(this.#program, {
        args: [...this.#globalArgs, ...args],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      }).output();
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new Error(`container runtime ${this.runtime} (${this.#program}) is not installed`);
      }
      throw err;
    }
    const decoder = new TextDecoder();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  }

  /** Loads an image archive (docker-archive or OCI archive); returns the image's name or id. */
  async load(archive: string, signal?: AbortSignal): Promise<string> {
    const out = await this.call(["load", "-q", "-i", archive], signal);
    const match = out.match(/^Loaded image(?:\(s\))?(?: ID)?: *(\S+)/m);
    if (!match) throw new Error(`${this.runtime} load said no image name: ${out.trim()}`);
    return match[1]!.split(",")[0]!;
  }

  /** The container's state and labels, or undefined when there is no such container. */
  async inspect(name: string, signal?: AbortSignal): Promise<ContainerState | undefined> {
    const format = '{"State":{{json .State}},"Labels":{{json .Config.Labels}}}';
    const out = await this.#run(["container", "inspect", "--format", format, name], 30_000, signal);
    if (out.code !== 0) return undefined;
    const { State: state, Labels: labels } = JSON.parse(out.stdout) as {
      State: Record<string, unknown>;
      Labels: Record<string, string> | null;
    };
    return {
      status: String(state.Status ?? "unknown"),
      running: state.Running === true,
      exitCode: Number(state.ExitCode ?? 0),
      pid: Number(state.Pid ?? 0),
      error: String(state.Error ?? ""),
      labels: labels ?? {},
    };
  }

  /** Containers carrying `label` (a key, or `key=value`), as {name, labels}. */
  async listLabelled(label: string): Promise<{ name: string; labels: Record<string, string> }[]> {
    const out = await this.call(["ps", "-a", "--filter", `label=${label}`, "--format", "json"]);
    const text = out.trim();
    if (text === "") return [];
    // podman prints one JSON array; docker prints one JSON object per line
    const rows =
      (text.startsWith("[")
        ? JSON.parse(text)
        : text.split("\n").map((l) => JSON.parse(l))) as Record<string, unknown>[];
    return rows.map((row) => ({
      name: Array.isArray(row.Names) ? String(row.Names[0]) : String(row.Names ?? ""),
      labels: typeof row.Labels === "string"
        ? Object.fromEntries(
          row.Labels.split(",").map((kv) => kv.split("=", 2) as [string, string]),
        )
        : (row.Labels ?? {}) as Record<string, string>,
    }));
  }

  /**
   * CPU and memory of running containers by name, from the runtime's stats (their cgroups: every
   * process in them): podman gives raw CPU nanoseconds and bytes; docker and nerdctl give only
   * memory, rounded as they print it. A container that is gone is left out; resolves empty when
   * the runtime cannot say.
   */
  async stats(
    names: string[],
  ): Promise<Map<string, { cpu_seconds?: number; memory_bytes: number }>> {
    const stats = new Map<string, { cpu_seconds?: number; memory_bytes: number }>();
    if (names.length === 0) return stats;
    const podman = this.runtime === "podman";
    const format = podman
      ? "{{.ContainerStats.Name}} {{.ContainerStats.CPUNano}} {{.ContainerStats.MemUsage}}"
      : "{{.Name}} {{.MemUsage}}";
    const args = ["stats", "--no-stream", ...(podman ? ["--no-reset"] : []), "--format", format];
    const out = await this.#run([...args, ...names], 30_000).catch(() => undefined);
    for (const line of out?.stdout.split("\n") ?? []) {
      const [name, ...rest] = line.trim().split(/\s+/);
      if (!name || !names.includes(name)) continue;
      if (podman) {
        const [cpu, memory] = rest.map(Number);
        if (Number.isFinite(cpu) && Number.isFinite(memory)) {
          stats.set(name, { cpu_seconds: cpu! / 1e9, memory_bytes: memory! });
        }
      } else {
        const memory = humanBytes(rest[0] ?? "");
        if (memory !== undefined) stats.set(name, { memory_bytes: memory });
      }
    }
    return stats;
  }

  /** The last `count` output lines, stdout and stderr (the runtime keeps them). */
  async logs(name: string, count: number): Promise<LogLine[]> {
    const out = await this.#run(["logs", "--tail", String(count), "-t", name], 30_000);
    const lines: LogLine[] = [];
    for (const [stream, text] of [["stdout", out.stdout], ["stderr", out.stderr]] as const) {
      for (const raw of text.split("\n")) {
        if (raw === "") continue;
        const space = raw.indexOf(" ");
        const at = raw.slice(0, space);
        const valid = space > 0 && !Number.isNaN(Date.parse(at));
        lines.push({
          at: valid ? new Date(at).toISOString() : new Date().toISOString(),
          stream,
          line: valid ? raw.slice(space + 1) : raw,
        });
      }
    }
    return lines.sort((a, b) => a.at.localeCompare(b.at)).slice(-count);
  }
}
