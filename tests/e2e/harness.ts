/**
 * Test harness: runs the real agent and CLI as `deno run` subprocesses with exactly the
 * permissions of the `loam` task in deno.json, on 127.0.0.1 and temporary data dirs; or, with
 * `LOAM_TEST_BINARY=<file>` (or a test's `binary` option), as a built loam file, so the shipped
 * file is what gets tested.
 * @module
 */
import { agentFlags } from "../../tasks/permissions.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const START_TIMEOUT_MS = 30_000;
const COMMAND_TIMEOUT_MS = 60_000;

/** A finished CLI run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options for a CLI run or an agent start. */
export interface LoamOptions {
  /** Extra environment (the child gets only PATH, HOME and these). */
  env?: Record<string, string>;
  /** A built loam file (or a wrapper of one) to run instead of `deno run main.ts`. */
  binary?: string;
  /** For a CLI run: how long it may take before it is killed (default 60 s). */
  timeoutMs?: number;
}

/**
 * Where built files extract their runtime during tests (once per payload, shared by every
 * agent): never the host's /var/lib/loam.
 */
const TEST_RUNTIME_DIR = "/tmp/loam-test-runtime";

/** A child's whole environment: PATH and HOME from this process, and `extra`. */
export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/root",
    ...extra,
  };
}

/** True when `path` starts with `#!` (a script, run through sh). */
function isScript(path: string): boolean {
  const file = Deno.openSync(path);
  try {
    const head = new Uint8Array(2);
    file.readSync(head);
    return head[0] === 0x23 && head[1] === 0x21;
  } finally {
    file.close();
  }
}

function loamCommand(args: string[], options: LoamOptions, stdio: "piped" | "null" = "piped") {
  // the built loam file every test runs, when LOAM_TEST_BINARY names one
  const binary = options.binary ?? Deno.env.get("LOAM_TEST_BINARY");
  // a self-extracting file (or a wrapper) is a shell script: sh runs it, as a user's shell would
  const script = binary !== undefined && isScript(binary);
  return new Deno.Command(binary ? (script ? "sh" : binary) : "deno", {
    args: binary
      ? [...(script ? [binary] : []), ...args]
      : ["run", "--quiet", ...agentFlags(), MAIN, ...args],
    env: childEnv({ ...(binary ? { LOAM_RUNTIME_DIR: TEST_RUNTIME_DIR } : {}), ...options.env }),
    clearEnv: true,
    stdin: "null",
    stdout: stdio,
    stderr: "piped",
  });
}

/** Starts `loam <args>` without waiting (to kill it mid-way); stdout and stderr are piped. */
export function spawnLoam(args: string[], options: LoamOptions = {}): Deno.ChildProcess {
  return loamCommand(args, options).spawn();
}

/** Runs `loam <args>` to completion. */
export async function runLoam(args: string[], options: LoamOptions = {}): Promise<CliResult> {
  const child = loamCommand(args, options).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? COMMAND_TIMEOUT_MS);
  const out = await child.output();
  clearTimeout(timer);
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** One JSON log line of the agent. */
export type LogLine = { level: string; msg: string } & Record<string, unknown>;

/** A running agent process. */
export class AgentProcess {
  readonly dataDir: string;
  readonly #child: Deno.ChildProcess;
  readonly #lines: string[] = [];
  readonly #done: Promise<void>;
  #waiters: (() => void)[] = [];
  apiUrl = "";
  /** Multiaddrs (with /p2p/<peer id>) other agents can bootstrap from. */
  meshAddrs: string[] = [];

  constructor(dataDir: string, child: Deno.ChildProcess) {
    this.dataDir = dataDir;
    this.#child = child;
    this.#done = this.#pump();
  }

  async #pump(): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of this.#child.stderr) {
      buffer += decoder.decode(chunk, { stream: true });
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        this.#lines.push(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
      }
      this.#wake();
    }
    if (buffer) this.#lines.push(buffer);
    this.#wake();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** The agent's process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Everything the agent wrote to stderr, line by line. */
  get lines(): string[] {
    return [...this.#lines];
  }

  /** The stderr lines that are JSON log records. */
  get logs(): LogLine[] {
    return this.#lines.flatMap((l) => {
      try {
        return [JSON.parse(l) as LogLine];
      } catch {
        return [];
      }
    });
  }

  /** Waits for a log line matching `predicate`; fails after `timeoutMs` or if the agent exits. */
  async waitForLog(
    predicate: (line: LogLine) => boolean,
    timeoutMs = START_TIMEOUT_MS,
  ): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    this.#done.then(() => exited = true);
    for (;;) {
      const hit = this.logs.find(predicate);
      if (hit) return hit;
      if (exited) {
        throw new Error(`agent exited before the expected log line:\n${this.lines.join("\n")}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for a log line:\n${this.lines.join("\n")}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The admin token written on first start. */
  adminToken(): string {
    return Deno.readTextFileSync(`${this.dataDir}/api/admin.token`).trim();
  }

  /** GET/POST… on the agent API with an optional bearer token. */
  request(path: string, init: RequestInit & { token?: string } = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (init.token) headers.set("authorization", `Bearer ${init.token}`);
    return fetch(`${this.apiUrl}${path}`, {
      ...init,
      headers,
      signal: AbortSignal.timeout(10_000),
    });
  }

  /**
   * Sends `signal` and waits for exit; returns the code and how long it took. SIGKILL stands
   * for a power cut: it goes to the agent too when the process is a loam file's run loop (sh,
   * with the agent as its child).
   */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<{ code: number; ms: number }> {
    const started = performance.now();
    if (signal === "SIGKILL") {
      killNow(agentChildren(this.#child.pid));
    }
    try {
      this.#child.kill(signal);
    } catch {
      // already exited
    }
    const killer = setTimeout(() => this.#child.kill("SIGKILL"), 15_000);
    const status = await this.#child.status;
    clearTimeout(killer);
    await this.#done;
    return { code: status.code, ms: performance.now() - started };
  }

  /** Waits for the process to exit by itself (start-up failures). */
  async exited(): Promise<{ code: number; stderr: string }> {
    const killer = setTimeout(() => this.#child.kill("SIGKILL"), START_TIMEOUT_MS);
    const status = await this.#child.status;
    clearTimeout(killer);
    await this.#done;
    return { code: status.code, stderr: this.#lines.join("\n") };
  }
}

/** Every process as `ps` sees it (the tests may not read /proc): pid, parent pid, command name. */
function processTable(): { pid: number; ppid: number; comm: string }[] {
  try {
    const out = new Deno.Command("ps", {
      args: ["-eo", "pid=,ppid=,comm="],
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    return new TextDecoder().decode(out.stdout).split("\n").flatMap((line) => {
      const [pid, ppid, comm] = line.trim().split(/\s+/);
      return pid && ppid && comm ? [{ pid: Number(pid), ppid: Number(ppid), comm }] : [];
    });
  } catch {
    return [];
  }
}

/**
 * The agent a loam file's run loop started: the direct child of `pid` that is Deno. Started
 * from source, `pid` is the agent itself and its children are workloads, which a power cut must
 * leave for the next start to find.
 */
function agentChildren(pid: number): number[] {
  return processTable().filter((p) => p.ppid === pid && p.comm === "deno").map((p) => p.pid);
}

/** Every process below `pid`. */
export function descendantsOf(pid: number): number[] {
  const table = processTable();
  const found: number[] = [];
  const walk = (parent: number) => {
    for (const p of table.filter((p) => p.ppid === parent)) {
      found.push(p.pid);
      walk(p.pid);
    }
  };
  walk(pid);
  return found;
}

/**
 * SIGKILLs `pids` at once, through `kill` (Deno.kill needs a run permission for every program,
 * which the tests do not have).
 */
export function killNow(pids: number[]): void {
  if (pids.length === 0) return;
  new Deno.Command("sh", {
    args: ["-c", 'kill -9 "$@" 2>/dev/null; true', "kill", ...pids.map(String)],
    stdout: "null",
    stderr: "null",
  }).outputSync();
}

/** Starts `loam run` with JSON logs on an ephemeral 127.0.0.1 port; waits for "agent ready". */
export async function startAgent(
  dataDir: string,
  args: string[] = [],
  options: LoamOptions = {},
): Promise<AgentProcess> {
  const agent = spawnAgent(dataDir, args, options);
  const ready = await agent.waitForLog((l) => l.msg === "api listening");
  agent.apiUrl = `http://${ready.addr}`;
  const mesh = await agent.waitForLog((l) => l.msg === "mesh listening");
  agent.meshAddrs = mesh.addrs as string[];
  await agent.waitForLog((l) => l.msg === "agent ready");
  return agent;
}

/** `loam run` on `dataDir` with ephemeral 127.0.0.1 API and mesh ports and JSON logs. */
export function loopbackRunArgs(dataDir: string): string[] {
  return [
    "run",
    "--data-dir",
    dataDir,
    "--api-listen",
    "127.0.0.1:0",
    "--mesh-listen",
    "/ip4/127.0.0.1/tcp/0",
    "--log-format",
    "json",
  ];
}

/** Spawns `loam run` without waiting (for start-up failure tests). */
export function spawnAgent(
  dataDir: string,
  args: string[] = [],
  options: LoamOptions = {},
): AgentProcess {
  const child = loamCommand([...loopbackRunArgs(dataDir), ...args], options, "null").spawn();
  return new AgentProcess(dataDir, child);
}

/** A free 127.0.0.1 TCP port (for an agent that must know its address before it starts). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** A fresh temporary directory, removed when the returned disposable is disposed. */
export async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "loam-test-" });
  // like /var/lib: passable by others, so workloads dropped to `nobody` reach their dirs
  await Deno.chmod(path, 0o711);
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}
