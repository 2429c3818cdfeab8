import { z } from "zod";
import { jsonResponse } from "./http_error.ts";
import { jsonOf, readBodyBytes, validBody } from "./body.ts";
import { JOB_PRIORITIES, JobRejected } from "../runtimes/job_queue.ts";
import type {
  ChatMessage,
  Generation,
  GenerationOptions,
  LlmInference,
} from "../runtimes/gguf_model.ts";

const stop = z.union([z.string(), z.array(z.string()).max(16)]).optional();

/** `POST /v1/instances/{id}/infer` on an LLM: a plain completion. */
const CompletionBody = z.strictObject({
  prompt: z.string(),
  max_tokens: z.number().int().min(1).max(1_000_000).default(128),
  temperature: z.number().min(0).max(2).default(0),
  top_p: z.number().gt(0).max(1).optional(),
  seed: z.number().int().min(0).optional(),
  stop,
  stream: z.boolean().default(false),
  priority: z.enum(JOB_PRIORITIES).optional(),
});

/** OpenAI's chat-completions request (the fields loam honours; others are refused by name). */
const ChatBody = z.object({
  model: z.string().min(1),
  messages: z.array(z.object({
    role: z.enum(["system", "developer", "user", "assistant"]),
    content: z.union([
      z.string(),
      z.array(z.object({ type: z.literal("text"), text: z.string() })),
    ]).nullable(),
  })).min(1),
  max_tokens: z.number().int().min(1).max(1_000_000).optional(),
  max_completion_tokens: z.number().int().min(1).max(1_000_000).optional(),
  temperature: z.number().min(0).max(2).default(1),
  top_p: z.number().gt(0).max(1).optional(),
  seed: z.number().int().min(0).optional(),
  stop: stop.nullable(),
  stream: z.boolean().default(false),
  n: z.literal(1).optional(),
  user: z.string().optional(),
  priority: z.enum(JOB_PRIORITIES).optional(),
});

function parse<T extends z.ZodType>(bytes: Uint8Array, schema: T): z.infer<T> {
  return validBody(schema, jsonOf(bytes));
}

const stopList = (value: string | string[] | null | undefined): string[] =>
  value === null || value === undefined ? [] : typeof value === "string" ? [value] : value;

/**
 * A server-sent-events response fed by `produce`: each `send` is one `data:` event. The
 * response starts with the first event, so a job refused before it (queue full, timeout) is
 * still an HTTP error status. When the client goes away, `cancelled` aborts the generation.
 */
function eventStream(
  produce: (send: (data: unknown) => void, cancelled: AbortSignal) => Promise<void>,
): Promise<Response> {
  const cancelled = new AbortController();
  const encoder = new TextEncoder();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    cancel() {
      cancelled.abort(new JobRejected("cancelled", "the client went away"));
    },
  });
  const response = new Response(body, {
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" },
  });
  return new Promise<Response>((resolve, reject) => {
    let started = false;
    const start = () => {
      if (!started) resolve(response);
      started = true;
    };
    const send = (data: unknown) => {
      if (cancelled.signal.aborted) return;
      start();
      const text = typeof data === "string" ? data : JSON.stringify(data);
      controller.enqueue(encoder.encode(`data: ${text}\n\n`));
    };
    produce(send, cancelled.signal).then(
      () => {
        start();
        controller.close();
      },
      (err) => {
        if (!started) {
          started = true;
          reject(err);
          return;
        }
        if (!cancelled.signal.aborted) {
          const code = err instanceof JobRejected ? err.code : "generation_failed";
          send({ error: { code, message: (err as Error).message } });
          controller.close();
        }
      },
    );
  });
}

function usage(g: Generation) {
  return {
    prompt_tokens: g.promptTokens,
    completion_tokens: g.completionTokens,
    total_tokens: g.promptTokens + g.completionTokens,
  };
}

const tokensPerSecond = (g: Generation) =>
  g.seconds > 0 ? Math.round(g.completionTokens / g.seconds * 10) / 10 : null;

/**
 * `POST /v1/instances/{id}/infer` on an LLM: `{prompt, max_tokens, temperature, stop, stream}`
 * → `{text, finish_reason, usage}`, or server-sent events `{text}` … `{done: true, …}`.
 */
export async function inferLlm(
  req: Request,
  llm: LlmInference,
  client: string,
  maxBytes: number,
): Promise<Response> {
  const body = parse(await readBodyBytes(req, maxBytes), CompletionBody);
  const options: GenerationOptions = {
    maxTokens: body.max_tokens,
    temperature: body.temperature,
    topP: body.top_p,
    seed: body.seed,
    stop: stopList(body.stop),
  };
  const request = { client, priority: body.priority, signal: req.signal };
  const summary = (g: Generation) => ({
    instance_id: llm.instanceId,
    finish_reason: g.finishReason,
    usage: usage(g),
    tokens_per_second: tokensPerSecond(g),
  });
  if (!body.stream) {
    const g = await llm.complete(request, body.prompt, options);
    return jsonResponse({ text: g.text, ...summary(g) });
  }
  return eventStream(async (send, cancelled) => {
    const signal = AbortSignal.any([req.signal, cancelled]);
    const g = await llm.complete({ ...request, signal }, body.prompt, {
      ...options,
      onText: (text) => send({ text }),
    });
    send({ done: true, ...summary(g) });
  });
}

function messagesOf(body: z.infer<typeof ChatBody>): ChatMessage[] {
  return body.messages.map((m) => ({
    role: m.role === "developer" ? "system" : m.role,
    content: typeof m.content === "string"
      ? m.content
      : (m.content ?? []).map((part) => part.text).join(""),
  }));
}

/** Reads a chat-completions body; the model lookup needs `model` before the rest runs. */
export async function readChatBody(req: Request, maxBytes: number) {
  return parse(await readBodyBytes(req, maxBytes), ChatBody);
}

/**
 * `POST /v1/chat/completions` in OpenAI's shape: one choice, `usage`, and with `stream: true`
 * `chat.completion.chunk` events ending in `data: [DONE]`.
 */
export async function chatCompletions(
  req: Request,
  body: z.infer<typeof ChatBody>,
  llm: LlmInference,
  client: string,
): Promise<Response> {
  const id = `chatcmpl-${crypto.randomUUID().replaceAll("-", "")}`;
  const created = Math.floor(Date.now() / 1000);
  const model = body.model;
  const options: GenerationOptions = {
    maxTokens: body.max_completion_tokens ?? body.max_tokens ?? 256,
    temperature: body.temperature,
    topP: body.top_p,
    seed: body.seed,
    stop: stopList(body.stop),
  };
  const request = { client: body.user ?? client, priority: body.priority, signal: req.signal };
  const finish = (g: Generation) => g.finishReason === "length" ? "length" : "stop";
  if (!body.stream) {
    const g = await llm.chat(request, messagesOf(body), options);
    return jsonResponse({
      id,
      object: "chat.completion",
      created,
      model,
      choices: [{
        index: 0,
        message: { role: "assistant", content: g.text },
        finish_reason: finish(g),
      }],
      usage: usage(g),
    });
  }
  const chunk = (delta: Record<string, string>, finishReason: string | null) => ({
    id,
    object: "chat.completion.chunk",
    created,
    model,
    choices: [{ index: 0, delta, finish_reason: finishReason }],
  });
  return eventStream(async (send, cancelled) => {
    const signal = AbortSignal.any([req.signal, cancelled]);
    let first = true;
    const g = await llm.chat({ ...request, signal }, messagesOf(body), {
      ...options,
      onText: (content) => {
        send(chunk(first ? { role: "assistant", content } : { content }, null));
        first = false;
      },
    });
    send({ ...chunk({}, finish(g)), usage: usage(g) });
    send("[DONE]");
  });
}
