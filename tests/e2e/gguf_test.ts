import assert from "node:assert/strict";
import { type AgentProcess, startAgent, tempDir } from "./harness.ts";
import { eventually, metric } from "./mesh_helpers.ts";
import { deployTinyLlm } from "./deploy_helpers.ts";
import { startBlobServer } from "../fixtures/blob_server.ts";
import { buildTinyGguf } from "../../tasks/gen_tiny_gguf.ts";

/** Greedy text of the seed-1 tiny model after "hello" (pinned: same bytes, same text). */
const HELLO_16 = "after gave will hi woman large her again color edge other thank long he will hi";

async function post(agent: AgentProcess, path: string, body: unknown, signal?: AbortSignal) {
  return await fetch(`${agent.apiUrl}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${agent.adminToken()}` },
    body: JSON.stringify(body),
    signal: signal ?? AbortSignal.timeout(30_000),
  });
}

/** The `data:` payloads of a server-sent-events body. */
async function events(res: Response): Promise<string[]> {
  const text = await res.text();
  return text.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice(6));
}

Deno.test({
  name: "a GGUF model loads; completions are deterministic, stop, stream and count tokens",
  async fn() {
    await using dir = await tempDir();
    const model = buildTinyGguf(1);
    await using http = startBlobServer({ "/tiny.gguf": { body: model } });
    const agent = await startAgent(dir.path, [], { env: { LOAM_INFERENCE_THREADS: "1" } });
    try {
      await deployTinyLlm(agent, http.url("/tiny.gguf"), model);
      const instance = await (await agent.request("/v1/instances/llm-llm-1", {
        token: agent.adminToken(),
      })).json();
      assert.equal(instance.adapter, "gguf_model");
      assert.equal(instance.state, "loaded");
      assert.equal(instance.provider, "cpu");
      assert.equal(instance.context_length, 256);
      assert.deepEqual(instance.names, ["tiny-llama"]);
      // the agent's share: llama.cpp's weights and context state for this model
      assert.equal(instance.usage_source, "agent_share");
      assert.ok(instance.memory_bytes > model.length / 2, `memory_bytes ${instance.memory_bytes}`);

      const url = "/v1/instances/llm-llm-1/infer";
      const first = await (await post(agent, url, { prompt: "hello", max_tokens: 16 })).json();
      assert.equal(first.text, HELLO_16);
      assert.equal(first.finish_reason, "length");
      assert.equal(first.usage.completion_tokens, 16);
      assert.equal(first.usage.prompt_tokens, 6, "<s> h e l l o"); // tokenized without the ▁ marker
      const again = await (await post(agent, url, { prompt: "hello", max_tokens: 16 })).json();
      assert.equal(again.text, first.text, "greedy decoding is deterministic");

      const stopped = await (await post(agent, url, {
        prompt: "hello",
        max_tokens: 16,
        stop: ["will"],
      })).json();
      assert.equal(stopped.text, "after gave");
      assert.equal(stopped.finish_reason, "stop");

      const streamed = await post(agent, url, { prompt: "hello", max_tokens: 16, stream: true });
      assert.equal(streamed.headers.get("content-type"), "text/event-stream; charset=utf-8");
      const data = (await events(streamed)).map((e) => JSON.parse(e));
      const done = data.pop();
      assert.equal(done.done, true);
      assert.equal(done.usage.completion_tokens, 16);
      assert.ok(data.length >= 8, `${data.length} text events`);
      assert.equal(data.map((d) => d.text).join(""), HELLO_16);

      const bad = await post(agent, url, { prompt: 3 });
      assert.equal(bad.status, 400);
      assert.match((await bad.json()).error.message, /prompt: /);

      const metrics = await (await agent.request("/metrics", { token: agent.adminToken() })).text();
      assert.match(metrics, /loam_tokens_generated_total\{loam_instance="llm-llm-1"\} (\d+)/);
      assert.match(metrics, /loam_tokens_per_second\{loam_instance="llm-llm-1"\} \d/);
    } finally {
      await agent.stop();
    }
  },
});

Deno.test("OpenAI chat completions: plain, streamed, by name; a client that leaves stops generation", async () => {
  await using dir = await tempDir();
  const model = buildTinyGguf(1);
  await using http = startBlobServer({ "/tiny.gguf": { body: model } });
  const agent = await startAgent(dir.path, [], { env: { LOAM_INFERENCE_THREADS: "1" } });
  try {
    await deployTinyLlm(agent, http.url("/tiny.gguf"), model);
    const list = await (await agent.request("/v1/models", { token: agent.adminToken() })).json();
    assert.equal(list.object, "list");
    assert.deepEqual(list.data.map((m: { id: string }) => m.id), ["llm-llm-1"]);
    assert.equal(list.models[0].status, "Loaded");
    const instance = await (await agent.request("/v1/instances/llm-llm-1", {
      token: agent.adminToken(),
    })).json();
    const loadedAt = Math.floor(Date.parse(instance.started_at) / 1000);
    const logs = await (await agent.request("/v1/instances/llm-llm-1/logs", {
      token: agent.adminToken(),
    })).json();
    assert.match(logs.lines.at(-1).line, /^loaded in \d+ ms: cpu, context \d+, 0 GPU layers$/);
    assert.equal(list.data[0].created, loadedAt, "created is the load time");
    const one = await agent.request("/v1/models/llm-llm-1", { token: agent.adminToken() });
    assert.deepEqual(await one.json(), list.data[0]);
    const none = await (await agent.request("/v1/models/nope", { token: agent.adminToken() }))
      .json();
    assert.equal(none.error.type, "not_found_error");

    const request = {
      model: "tiny-llama",
      messages: [
        { role: "system", content: "You are terse." },
        { role: "user", content: "hello there" },
      ],
      max_tokens: 12,
      temperature: 0,
    };
    const res = await post(agent, "/v1/chat/completions", request);
    assert.equal(res.status, 200);
    const completion = await res.json();
    assert.equal(completion.object, "chat.completion");
    assert.equal(completion.model, "tiny-llama");
    assert.match(completion.id, /^chatcmpl-/);
    const [choice] = completion.choices;
    assert.equal(choice.message.role, "assistant");
    assert.ok(choice.message.content.length > 0);
    assert.ok(["stop", "length"].includes(choice.finish_reason));
    assert.equal(
      completion.usage.total_tokens,
      completion.usage.prompt_tokens + completion.usage.completion_tokens,
    );

    const byId =
      await (await post(agent, "/v1/chat/completions", { ...request, model: "llm-llm-1" }))
        .json();
    assert.equal(byId.choices[0].message.content, choice.message.content, "deterministic");

    const streamed = await post(agent, "/v1/chat/completions", { ...request, stream: true });
    const payloads = await events(streamed);
    assert.equal(payloads.at(-1), "[DONE]");
    const chunks = payloads.slice(0, -1).map((p) => JSON.parse(p));
    assert.ok(chunks.every((c) => c.object === "chat.completion.chunk" && c.id === chunks[0].id));
    assert.equal(chunks[0].choices[0].delta.role, "assistant");
    const text = chunks.map((c) => c.choices[0].delta.content ?? "").join("");
    assert.equal(text, choice.message.content);
    assert.equal(chunks.at(-1).choices[0].finish_reason, choice.finish_reason);

    const missing = await post(agent, "/v1/chat/completions", { ...request, model: "gpt-4" });
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).error.code, "model_not_found");

    // a client that hangs up mid-stream: generation stops and the next job runs at once
    const leaving = new AbortController();
    const long = await post(
      agent,
      "/v1/chat/completions",
      { ...request, max_tokens: 500_000, stream: true },
      leaving.signal,
    );
    const reader = long.body!.getReader();
    await reader.read();
    leaving.abort();
    await reader.cancel().catch(() => {});
    await eventually(
      "the job ends as cancelled",
      async () =>
        await metric(agent, 'loam_jobs_total{loam_instance="llm-llm-1",outcome="cancelled"}') >=
          1 ||
        undefined,
    );
    const started = performance.now();
    const after = await post(agent, "/v1/instances/llm-llm-1/infer", {
      prompt: "hi",
      max_tokens: 4,
    });
    assert.equal(after.status, 200);
    await after.body?.cancel();
    assert.ok(performance.now() - started < 5000, "the slot was freed");
  } finally {
    await agent.stop();
  }
});
