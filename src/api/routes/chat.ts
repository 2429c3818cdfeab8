import { z } from "zod";
import { jsonResponse } from "../../system/http_error.ts";
import type { Route } from "../router.ts";
import { eventStream } from "../../runtimes/event_stream.ts";
import { usage } from "../../runtimes/llm_http.ts";
import type { LlmInference } from "../../runtimes/gguf_model.ts";
import {
  answerIds,
  finishReason,
  generationOptions,
  type LlmDeps,
  llmRoute,
  RESPONSE_FORMAT,
  SAMPLING,
} from "../openai.ts";
import { CHAT_MESSAGES, chatMessagesOf, toolCallsOf, toolPlan, TOOLS } from "../openai_tools.ts";

/** OpenAI's chat-completions request (the fields loam honours; others are refused by name). */
const ChatBody = z.object({
  model: z.string().min(1),
  messages: CHAT_MESSAGES,
  max_completion_tokens: z.number().int().min(1).max(1_000_000).nullable().optional(),
  ...SAMPLING,
  ...RESPONSE_FORMAT,
  ...TOOLS,
});

/** `POST /v1/chat/completions` (OpenAI-compatible, GGUF). */
export function chatRoutes(deps: LlmDeps): Route[] {
  return [llmRoute("/v1/chat/completions", ChatBody, deps, chatCompletions)];
}

/**
 * `POST /v1/chat/completions` in OpenAI's shape: one choice, `usage`, and with `stream: true`
 * `chat.completion.chunk` events ending in `data: [DONE]`. A function call comes as
 * `tool_calls` with `finish_reason: "tool_calls"`; streamed, in one chunk once it is complete.
 */
async function chatCompletions(
  req: Request,
  body: z.infer<typeof ChatBody>,
  llm: LlmInference,
  client: string,
): Promise<Response> {
  const { id, created } = answerIds("chatcmpl");
  const model = body.model;
  const plan = toolPlan(body);
  const messages = chatMessagesOf(body.messages);
  const options = {
    ...generationOptions(body, body.max_completion_tokens ?? body.max_tokens ?? 256),
    ...(plan.mode === "none" ? {} : plan.options),
  };
  const request = { client: body.user ?? client, priority: body.priority, signal: req.signal };
  if (!body.stream) {
    const g = await llm.chat(request, messages, options);
    const toolCalls = toolCallsOf(plan, g);
    return jsonResponse({
      id,
      object: "chat.completion",
      created,
      model,
      choices: [{
        index: 0,
        message: toolCalls
          ? {
            role: "assistant",
            // a forced call's text is the call itself
            content: plan.mode === "forced" ? null : g.text || null,
            tool_calls: toolCalls,
          }
          : { role: "assistant", content: g.text },
        finish_reason: toolCalls ? "tool_calls" : finishReason(g),
      }],
      usage: usage(g),
    });
  }
  const chunk = (delta: Record<string, unknown>, finishReason: string | null) => ({
    id,
    object: "chat.completion.chunk",
    created,
    model,
    choices: [{ index: 0, delta, finish_reason: finishReason }],
  });
  return eventStream(async (send, cancelled) => {
    const signal = AbortSignal.any([req.signal, cancelled]);
    let first = true;
    const role = () => first ? (first = false, { role: "assistant" }) : {};
    const g = await llm.chat({ ...request, signal }, messages, {
      ...options,
      // a forced call's text is the call itself: it is sent as tool_calls once complete
      ...(plan.mode === "forced"
        ? {}
        : { onText: (content) => send(chunk({ ...role(), content }, null)) }),
    });
    const toolCalls = toolCallsOf(plan, g);
    if (toolCalls) {
      send(chunk({ ...role(), tool_calls: toolCalls.map((c, index) => ({ index, ...c })) }, null));
    } else if (plan.mode === "forced") {
      send(chunk({ ...role(), content: g.text }, null));
    }
    send({ ...chunk({}, toolCalls ? "tool_calls" : finishReason(g)), usage: usage(g) });
    send("[DONE]");
  });
}
