import { z } from "zod";
import { jsonResponse } from "../../system/http_error.ts";
import type { Route } from "../router.ts";
import { eventStream } from "../../runtimes/event_stream.ts";
import { usage } from "../../runtimes/llm_http.ts";
import type { ChatMessage, LlmInference } from "../../runtimes/gguf_model.ts";
import {
  answerIds,
  finishReason,
  generationOptions,
  type LlmDeps,
  llmRoute,
  RESPONSE_FORMAT,
  SAMPLING,
} from "../openai.ts";

/** OpenAI's chat-completions request (the fields loam honours; others are refused by name). */
const ChatBody = z.object({
  model: z.string().min(1),
  messages: z.array(z.object({
    role: z.enum(["system", "developer", "user", "assistant"]),
    content: z.union([
      z.string(),
      z.array(z.object({ type: z.literal("text"), text: z.string() })),
    ]).nullable(),
    name: z.string().optional(),
  })).min(1),
  max_completion_tokens: z.number().int().min(1).max(1_000_000).nullable().optional(),
  ...SAMPLING,
  ...RESPONSE_FORMAT,
});

function messagesOf(body: z.infer<typeof ChatBody>): ChatMessage[] {
  return body.messages.map((m) => ({
    role: m.role === "developer" ? "system" : m.role,
    content: typeof m.content === "string"
      ? m.content
      : (m.content ?? []).map((part) => part.text).join(""),
  }));
}

/** `POST /v1/chat/completions` (OpenAI-compatible, GGUF). */
export function chatRoutes(deps: LlmDeps): Route[] {
  return [llmRoute("/v1/chat/completions", ChatBody, deps, chatCompletions)];
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
  const { id, created } = answerIds("chatcmpl");
  const model = body.model;
  const options = generationOptions(body, body.max_completion_tokens ?? body.max_tokens ?? 256);
  const request = { client: body.user ?? client, priority: body.priority, signal: req.signal };
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
        finish_reason: finishReason(g),
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
    send({ ...chunk({}, finishReason(g)), usage: usage(g) });
    send("[DONE]");
  });
}
