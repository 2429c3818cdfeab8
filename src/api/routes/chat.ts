import { z } from "zod";
import { HttpError, jsonResponse } from "../../system/http_error.ts";
import { readValidBody } from "../../system/http_body.ts";
import type { Route } from "../router.ts";
import { answerJobErrors } from "../../runtimes/job_errors.ts";
import { JOB_PRIORITIES } from "../../runtimes/job_queue.ts";
import { eventStream } from "../../runtimes/event_stream.ts";
import { stop, stopList, usage } from "../../runtimes/llm_http.ts";
import type {
  ChatMessage,
  Generation,
  GenerationOptions,
  LlmInference,
} from "../../runtimes/gguf_model.ts";

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

function messagesOf(body: z.infer<typeof ChatBody>): ChatMessage[] {
  return body.messages.map((m) => ({
    role: m.role === "developer" ? "system" : m.role,
    content: typeof m.content === "string"
      ? m.content
      : (m.content ?? []).map((part) => part.text).join(""),
  }));
}

/** What the chat route needs from the agent. */
export interface ChatDeps {
  /** The LLM an instance id or model name refers to: "loading" while it loads, else undefined. */
  llm(nameOrId: string): LlmInference | "loading" | undefined;
  /** Limit for inference request bodies (`jobs.max_input_bytes`). */
  maxInputBytes: number;
}

/** The loaded LLM named `nameOrId`: 404 when there is none, 503 while it loads. */
function loadedLlm(deps: ChatDeps, nameOrId: string): LlmInference {
  const llm = deps.llm(nameOrId);
  if (llm === undefined) {
    throw new HttpError(404, "model_not_found", `no GGUF model instance or name "${nameOrId}"`);
  }
  if (llm === "loading") {
    throw new HttpError(503, "loading", `model ${nameOrId} is loading`, { "retry-after": "1" });
  }
  return llm;
}

/** `POST /v1/chat/completions` (OpenAI-compatible, GGUF). */
export function chatRoutes(deps: ChatDeps): Route[] {
  return [{
    method: "POST",
    path: "/v1/chat/completions",
    scope: "infer:run",
    errors: "openai",
    handler: async ({ req, token }) => {
      const body = await readValidBody(req, deps.maxInputBytes, ChatBody);
      const llm = loadedLlm(deps, body.model);
      return answerJobErrors(() => chatCompletions(req, body, llm, token?.name ?? "anonymous"));
    },
  }];
}

/**
 * `POST /v1/chat/completions` in OpenAI's shape: one choice, `usage`, and with `stream: true`
 * `chat.completion.chunk` events ending in `data: [DONE]`.
 */
async function chatCompletions(
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
