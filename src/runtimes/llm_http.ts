import { z } from "zod";
import { jsonResponse } from "../system/http_error.ts";
import { readValidBody } from "../system/http_body.ts";
import { JOB_PRIORITIES } from "./job_queue.ts";
import { eventStream } from "./event_stream.ts";
import type { Generation, GenerationOptions, LlmInference } from "./gguf_model.ts";

/** OpenAI's `stop`: one string or up to 16. */
export const stop = z.union([z.string(), z.array(z.string()).max(16)]).optional();

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

/** `stop` as a list. */
export const stopList = (value: string | string[] | null | undefined): string[] =>
  value === null || value === undefined ? [] : typeof value === "string" ? [value] : value;

/** OpenAI's `usage` of a generation. */
export function usage(g: Generation) {
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
  const body = await readValidBody(req, maxBytes, CompletionBody);
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
