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

/** OpenAI's legacy text-completion request: one prompt, continued. */
const CompletionBody = z.object({
  model: z.string().min(1),
  prompt: z.union([
    z.string(),
    z.array(z.string()).length(1, { error: "prompt: one prompt per request" }),
  ]),
  echo: z.boolean().optional(),
  best_of: z.literal(1, { error: "best_of: only 1" }).nullable().optional(),
  ...SAMPLING,
  ...RESPONSE_FORMAT,
});

/**
 * `POST /v1/completions` (OpenAI's legacy API, which LangChain's and llama.cpp's clients still
 * use): `text_completion` objects, and with `stream: true` chunks of the same shape ending in
 * `data: [DONE]`. `max_tokens` defaults to 16, as OpenAI's does.
 */
export function completionRoutes(deps: LlmDeps): Route[] {
  return [llmRoute("/v1/completions", CompletionBody, deps, complete)];
}

async function complete(
  req: Request,
  body: z.infer<typeof CompletionBody>,
  llm: LlmInference,
  client: string,
): Promise<Response> {
  const { id, created } = answerIds("cmpl");
  const prompt = typeof body.prompt === "string" ? body.prompt : body.prompt[0]!;
  const options = generationOptions(body, body.max_tokens ?? 16);
  const request = { client: body.user ?? client, priority: body.priority, signal: req.signal };
  const echoed = body.echo ? prompt : "";
  const object = (text: string, finish: string | null) => ({
    id,
    object: "text_completion",
    created,
    model: body.model,
    choices: [{ text, index: 0, logprobs: null, finish_reason: finish }],
  });
  if (!body.stream) {
    const g = await llm.complete(request, prompt, options);
    return jsonResponse({ ...object(echoed + g.text, finishReason(g)), usage: usage(g) });
  }
  return eventStream(async (send, cancelled) => {
    const signal = AbortSignal.any([req.signal, cancelled]);
    if (echoed) send(object(echoed, null));
    const g = await llm.complete({ ...request, signal }, prompt, {
      ...options,
      onText: (text) => send(object(text, null)),
    });
    send({ ...object("", finishReason(g)), usage: usage(g) });
    send("[DONE]");
  });
}
