/**
 * The official `openai` npm client against a real agent serving the tiny GGUF: what LangChain,
 * Open WebUI and every OpenAI SDK user does first.
 * @module
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { tempDir } from "./harness.ts";
import { inferToken, tinyLlmAgent } from "./deploy_helpers.ts";

Deno.test({
  name:
    "the openai client: models, chat (plain, streamed, aborted), completions, embeddings, JSON schema, tool calls, refusals",
  async fn() {
    await using dir = await tempDir();
    await using served = await tinyLlmAgent(dir.path);
    const { agent } = served;
    {
      const client = new OpenAI({
        baseURL: `${agent.apiUrl}/v1`,
        apiKey: await inferToken(dir.path),
        maxRetries: 0,
        timeout: 60_000,
      });

      const models = await client.models.list();
      assert.deepEqual(models.data.map((m) => m.id), ["llm-llm-1"]);
      assert.ok(models.data[0]!.created > 1_700_000_000);
      assert.equal((await client.models.retrieve("llm-llm-1")).id, "llm-llm-1");

      const messages = [{ role: "user" as const, content: "hello there" }];
      const { data: chat, response } = await client.chat.completions.create({
        model: "tiny-llama",
        messages,
        max_tokens: 12,
        temperature: 0,
      }).withResponse();
      assert.ok(response.headers.get("x-request-id"));
      assert.equal(chat.object, "chat.completion");
      assert.ok((chat.choices[0]!.message.content ?? "").length > 0);
      assert.equal(chat.choices[0]!.finish_reason, "length");
      assert.equal(chat.usage!.completion_tokens, 12);
      const promptTokens = chat.usage!.prompt_tokens;
      assert.ok(promptTokens > 0);

      let streamed = "";
      let last: OpenAI.Chat.Completions.ChatCompletionChunk | undefined;
      const stream = await client.chat.completions.create({
        model: "tiny-llama",
        messages,
        max_tokens: 12,
        temperature: 0,
        stream: true,
      });
      for await (const chunk of stream) {
        streamed += chunk.choices[0]?.delta.content ?? "";
        last = chunk;
      }
      assert.equal(streamed, chat.choices[0]!.message.content, "streamed = non-streamed, greedy");
      assert.equal(last!.choices[0]!.finish_reason, "length");

      // past the context length (256): a context shift re-evaluates, and that is not prompt
      const long = await client.chat.completions.create({
        model: "tiny-llama",
        messages,
        max_tokens: 400,
        temperature: 0,
      });
      assert.equal(long.usage!.prompt_tokens, promptTokens);
      assert.ok(long.usage!.completion_tokens > 256, `${long.usage!.completion_tokens} tokens`);

      // without a seed, sampling is random: three draws are not all the same
      const draws = await Promise.all(
        [1, 2, 3].map(async () =>
          (await client.chat.completions.create({
            model: "tiny-llama",
            messages,
            max_tokens: 12,
            temperature: 1,
          })).choices[0]!.message.content
        ),
      );
      assert.ok(new Set(draws).size > 1, `three draws: ${JSON.stringify(draws)}`);

      // a client that leaves mid-stream: the job stops and the next request is served
      const controller = new AbortController();
      const aborted = await client.chat.completions.create(
        { model: "tiny-llama", messages, max_tokens: 200, stream: true },
        { signal: controller.signal },
      );
      let chunks = 0;
      try {
        for await (const _ of aborted) if (++chunks === 3) controller.abort();
      } catch (err) {
        assert.ok(err instanceof OpenAI.APIUserAbortError, String(err));
      }
      assert.equal(chunks, 3, "nothing arrives after the abort");

      const completion = await client.completions.create({
        model: "tiny-llama",
        prompt: "hello",
        max_tokens: 8,
        temperature: 0,
      });
      assert.equal(completion.object, "text_completion");
      assert.ok(completion.choices[0]!.text.length > 0);
      assert.equal(completion.usage!.completion_tokens, 8);
      let streamedCompletion = "";
      for await (
        const chunk of await client.completions.create({
          model: "tiny-llama",
          prompt: "hello",
          max_tokens: 8,
          temperature: 0,
          stream: true,
        })
      ) {
        streamedCompletion += chunk.choices[0]?.text ?? "";
      }
      assert.equal(streamedCompletion, completion.choices[0]!.text);

      const embeddings = await client.embeddings.create({
        model: "tiny-llama",
        input: ["hello there", "good morning"],
      });
      assert.equal(embeddings.data.length, 2);
      const [a, b] = embeddings.data.map((d) => d.embedding);
      assert.ok(a!.length > 0 && a!.length === b!.length);
      assert.ok(a!.every(Number.isFinite));
      assert.notDeepEqual(a, b);
      assert.ok(embeddings.usage.prompt_tokens > 0);
      const floats = await client.embeddings.create({
        model: "tiny-llama",
        input: "hello there",
        encoding_format: "float",
      });
      const close = floats.data[0]!.embedding.every((v, i) => Math.abs(v - a![i]!) < 1e-5);
      assert.ok(close, "base64 and float encodings carry the same vector");

      const schema = {
        type: "object",
        properties: { color: { enum: ["red", "green", "blue"] } },
        required: ["color"],
        additionalProperties: false,
      };
      const color = (maxTokens: number) =>
        client.chat.completions.create({
          model: "tiny-llama",
          messages: [{ role: "user", content: "a color, as JSON" }],
          max_tokens: maxTokens,
          temperature: 0,
          response_format: { type: "json_schema", json_schema: { name: "color", schema } },
        });
      const json = await color(64);
      assert.equal(json.choices[0]!.finish_reason, "stop", json.choices[0]!.message.content!);
      const parsed = JSON.parse(json.choices[0]!.message.content!);
      assert.deepEqual(Object.keys(parsed), ["color"]);
      assert.ok(["red", "green", "blue"].includes(parsed.color));
      const cut = await color(2);
      assert.equal(cut.choices[0]!.finish_reason, "length", "cut JSON says length");
      const object = await client.chat.completions.create({
        model: "tiny-llama",
        messages,
        max_tokens: 64,
        temperature: 0,
        response_format: { type: "json_object" },
      });
      if (object.choices[0]!.finish_reason === "stop") {
        JSON.parse(object.choices[0]!.message.content!);
      }

      // a forced call: the grammar admits only the named function's call, so even random weights
      // call it with arguments that match its schema
      const weather = {
        type: "function" as const,
        function: {
          name: "get_weather",
          description: "the weather in a city",
          parameters: {
            type: "object",
            properties: { city: { enum: ["Oslo", "Lima"] }, unit: { enum: ["c", "f"] } },
            required: ["city", "unit"],
            additionalProperties: false,
          },
        },
      };
      const ask = { role: "user" as const, content: "the weather in Oslo?" };
      const forced = await client.chat.completions.create({
        model: "tiny-llama",
        messages: [ask],
        max_tokens: 256,
        temperature: 0,
        tools: [weather, { type: "function", function: { name: "noop" } }],
        tool_choice: { type: "function", function: { name: "get_weather" } },
      });
      const called = forced.choices[0]!;
      assert.equal(called.finish_reason, "tool_calls", JSON.stringify(called));
      assert.equal(called.message.content, null);
      const call = called.message.tool_calls![0]!;
      assert.ok(call.type === "function" && call.id.startsWith("call_"));
      assert.equal(call.function.name, "get_weather");
      const args = JSON.parse(call.function.arguments);
      assert.deepEqual(Object.keys(args).sort(), ["city", "unit"]);
      assert.ok(["Oslo", "Lima"].includes(args.city) && ["c", "f"].includes(args.unit));
      // the call's result goes back as a tool message, and the model answers in text
      const answered = await client.chat.completions.create({
        model: "tiny-llama",
        messages: [ask, called.message, { role: "tool", tool_call_id: call.id, content: "3 C" }],
        max_tokens: 6,
        tools: [weather],
        tool_choice: "none",
      });
      assert.ok((answered.choices[0]!.message.content ?? "").length > 0);
      assert.equal(answered.choices[0]!.message.tool_calls, undefined);
      // streamed, `required`: the call arrives as tool_calls deltas
      const streamedCall = await client.chat.completions.create({
        model: "tiny-llama",
        messages: [ask],
        max_tokens: 256,
        temperature: 0,
        tools: [weather],
        tool_choice: "required",
        stream: true,
      });
      let streamedName = "", streamedArgs = "", streamedFinish: string | null = null;
      for await (const part of streamedCall) {
        for (const delta of part.choices[0]?.delta.tool_calls ?? []) {
          streamedName += delta.function?.name ?? "";
          streamedArgs += delta.function?.arguments ?? "";
        }
        streamedFinish = part.choices[0]?.finish_reason ?? streamedFinish;
      }
      assert.equal(streamedName, "get_weather");
      assert.equal(streamedFinish, "tool_calls");
      assert.ok(["Oslo", "Lima"].includes(JSON.parse(streamedArgs).city));
      // `auto`: the model decides (random weights: text, a call, or cut short). Offered functions
      // are documented in the system prompt (about 700 tokens): too long for 256, fine in 1,024
      const offer = (model: string) =>
        client.chat.completions.create({ model, messages: [ask], max_tokens: 8, tools: [weather] });
      const tooLong = await offer("tiny-llama").then(() => undefined, (e: unknown) => e);
      assert.ok(tooLong instanceof OpenAI.BadRequestError, String(tooLong));
      assert.equal(tooLong.code, "context_length_exceeded");
      await served.deploy({ id: "llm-2", name: "tiny-llama-1k", contextLength: 1024 });
      const offered = await offer("tiny-llama-1k");
      assert.ok(["stop", "length", "tool_calls"].includes(offered.choices[0]!.finish_reason));
      if (offered.choices[0]!.finish_reason === "tool_calls") {
        assert.equal(offered.choices[0]!.message.tool_calls![0]!.type, "function");
      }
      for (
        const [extra, param] of [
          [
            { tools: [weather], tool_choice: { type: "function", function: { name: "x" } } },
            "tool_choice",
          ],
          [{ tool_choice: "required" }, "tool_choice"],
          [{ tools: [weather], response_format: { type: "json_object" } }, "response_format"],
          [{ messages: [ask, called.message] }, "messages[2]"],
          [
            { messages: [ask, { role: "tool", tool_call_id: "call_x", content: "?" }] },
            "messages[1].tool_call_id",
          ],
        ] as const
      ) {
        const err = await client.chat.completions.create({
          model: "tiny-llama",
          messages: [ask],
          max_tokens: 4,
          ...extra,
        } as OpenAI.ChatCompletionCreateParamsNonStreaming).then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.ok(err instanceof OpenAI.BadRequestError, `${param}: ${err}`);
        assert.equal(err.param, param, String(err));
      }

      // what loam does not do is refused by name, never silently ignored
      for (
        const [extra, param] of [
          [{ n: 2 }, "n"],
          [{ logit_bias: { "1": 5 } }, "logit_bias"],
          [{ logprobs: true }, "logprobs"],
          [{ top_logprobs: 2 }, "top_logprobs"],
        ] as const
      ) {
        const err = await client.chat.completions.create({
          model: "tiny-llama",
          messages,
          max_tokens: 4,
          ...extra,
        }).then(() => undefined, (e: unknown) => e);
        assert.ok(err instanceof OpenAI.BadRequestError, `${param}: ${err}`);
        assert.equal(err.param, param);
      }
      const missing = await client.chat.completions.create({ model: "nope", messages })
        .then(() => undefined, (e: unknown) => e);
      assert.ok(missing instanceof OpenAI.NotFoundError, String(missing));
    }
  },
});
