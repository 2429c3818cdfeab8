/**
 * The real `ollama` npm client, and raw requests shaped as Ollama clients send them, against a
 * real agent serving the tiny GGUF: on the API port with a token, and on `api.ollama_listen`
 * without one.
 * @module
 */
import assert from "node:assert/strict";
import { Ollama } from "ollama";
import { spawnAgent, tempDir } from "./harness.ts";
import { tinyLlmAgent } from "./deploy_helpers.ts";
import { sha256Hex } from "../fixtures/blob_server.ts";

Deno.test({
  name:
    "the ollama client: tags, show, version, chat and generate (streamed or not), embed; the token-less listener",
  async fn() {
    await using dir = await tempDir();
    await using served = await tinyLlmAgent(dir.path, ["--set", "api.ollama_listen=127.0.0.1:0"]);
    const { agent, model } = served;
    {
      const withToken = new Ollama({
        host: agent.apiUrl,
        headers: { authorization: `Bearer ${agent.adminToken()}` },
      });
      const tags = await withToken.list();
      assert.deepEqual(tags.models.map((m) => m.name), ["tiny-llama"]);
      assert.equal(tags.models[0]!.digest, sha256Hex(model));
      assert.equal(tags.models[0]!.size, model.length);
      assert.match((await withToken.version()).version, /^\d+\.\d+\.\d+$/);
      const shown = await withToken.show({ model: "tiny-llama" });
      assert.equal(shown.details.format, "gguf");

      const messages = [{ role: "user", content: "hello there" }];
      const options = { temperature: 0, num_predict: 10 };
      const chat = await withToken.chat({ model: "tiny-llama", messages, options, stream: false });
      assert.equal(chat.message.role, "assistant");
      assert.ok(chat.message.content.length > 0);
      assert.equal(chat.done, true);
      assert.equal(chat.done_reason, "length");
      assert.equal(chat.eval_count, 10);
      assert.ok(chat.prompt_eval_count > 0);
      let streamed = "";
      let parts = 0;
      for await (
        const part of await withToken.chat({ model: "tiny-llama", messages, options, stream: true })
      ) {
        streamed += part.message.content;
        parts++;
      }
      assert.equal(streamed, chat.message.content, "streamed = not streamed, greedy");
      assert.ok(parts > 2, `${parts} NDJSON lines`);

      const generated = await withToken.generate({
        model: "tiny-llama",
        prompt: "hello",
        options,
        stream: false,
      });
      assert.ok((generated.response ?? "").length > 0);
      let generatedStream = "";
      for await (
        const part of await withToken.generate({
          model: "tiny-llama",
          prompt: "hello",
          options,
          stream: true,
        })
      ) {
        generatedStream += part.response;
      }
      assert.equal(generatedStream, generated.response);
      const embedded = await withToken.embed({ model: "tiny-llama", input: ["hello", "world"] });
      assert.equal(embedded.embeddings.length, 2);
      assert.ok(embedded.embeddings[0]!.length > 0);

      // the API port wants a token; a field Ollama's API does not have is refused by name
      assert.equal((await fetch(`${agent.apiUrl}/api/tags`)).status, 401);
      const odd = await agent.request("/api/chat", {
        method: "POST",
        token: agent.adminToken(),
        body: JSON.stringify({ model: "tiny-llama", messages, options: { mirostat: 2 } }),
      });
      assert.equal(odd.status, 400);
      assert.match((await odd.json()).error.message, /mirostat/);

      // api.ollama_listen: Ollama's routes only, no token needed for infer:run
      const line = await agent.waitForLog((l) => l.msg === "ollama api listening");
      const ollamaUrl = `http://${line.addr}`;
      const anonymous = new Ollama({ host: ollamaUrl });
      assert.deepEqual((await anonymous.list()).models.map((m) => m.name), ["tiny-llama"]);
      const again = await anonymous.chat({ model: "tiny-llama", messages, options, stream: false });
      assert.equal(again.message.content, chat.message.content);
      // a raw request as Open WebUI sends it: streaming is Ollama's default
      const raw = await fetch(`${ollamaUrl}/api/generate`, {
        method: "POST",
        body: JSON.stringify({ model: "tiny-llama", prompt: "hello", options }),
      });
      assert.match(raw.headers.get("content-type") ?? "", /^application\/x-ndjson/);
      const lines = (await raw.text()).trim().split("\n").map((l) => JSON.parse(l));
      assert.equal(lines.at(-1).done, true);
      assert.equal(lines.slice(0, -1).map((l) => l.response).join(""), generated.response);
      for (const path of ["/v1/status", "/v1/deployments", "/metrics"]) {
        const res = await fetch(`${ollamaUrl}${path}`);
        assert.equal(res.status, 404, `${path} is not served on the Ollama listener`);
        await res.body?.cancel();
      }
    }
  },
});

Deno.test("api.ollama_listen must be a loopback address", async () => {
  await using dir = await tempDir();
  const { code, stderr } = await spawnAgent(dir.path, [
    "--set",
    "api.ollama_listen=0.0.0.0:11434",
  ]).exited();
  assert.equal(code, 2, stderr);
  assert.match(stderr, /api\.ollama_listen.*loopback/);
});
