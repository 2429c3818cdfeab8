/**
 * @module
 * What OpenAI's chat, completion and embedding routes share: the sampling parameters loam
 * honours, the refusal (a 400 naming it) of every parameter it does not, and the model lookup.
 */

import { z } from "zod";
import { HttpError } from "../system/http_error.ts";
import { jsonOf, readBodyBytes, validBody } from "../system/http_body.ts";
import { forwardedJob, type JobRouting } from "./job_routing.ts";
import type { TokenRecord } from "./tokens.ts";
import { JOB_PRIORITIES } from "../runtimes/job_queue.ts";
import { answerJobErrors } from "../runtimes/job_errors.ts";
import type { Route } from "./router.ts";
import { stop, stopList } from "../runtimes/llm_http.ts";
import type { Generation, GenerationOptions, LlmInference } from "../runtimes/gguf_model.ts";

/** The model lookup every OpenAI route needs from the agent. */
export interface LlmDeps {
  /** The LLM an instance id or model name refers to: "loading" while it loads, else undefined. */
  llm(nameOrId: string): LlmInference | "loading" | undefined;
  /** Limit for inference request bodies (`jobs.max_input_bytes`). */
  maxInputBytes: number;
  /** Sends jobs for models not here (or with a full queue here) to peers; absent: no mesh routing. */
  routing?: JobRouting;
}

/** The loaded LLM named `nameOrId`: 404 when there is none, 503 while it loads. */
export function loadedLlm(deps: LlmDeps, nameOrId: string): LlmInference {
  const llm = deps.llm(nameOrId);
  if (llm === undefined) {
    throw new HttpError(
      404,
      "model_not_found",
      `no GGUF model instance or name "${nameOrId}"${deps.routing ? " here or on a peer" : ""}`,
      {},
      "model",
    );
  }
  if (llm === "loading") {
    throw new HttpError(503, "loading", `model ${nameOrId} is loading`, { "retry-after": "1" });
  }
  return llm;
}

const penalty = z.number().min(-2).max(2).optional();

/** `response_format`: free text, any JSON value, or JSON matching a schema (by grammar). */
const ResponseFormat = z.discriminatedUnion("type", [
  z.object({ type: z.literal("text") }),
  z.object({ type: z.literal("json_object") }),
  z.object({
    type: z.literal("json_schema"),
    json_schema: z.object({
      name: z.string().optional(),
      schema: z.record(z.string(), z.unknown()).optional(),
      strict: z.boolean().nullable().optional(),
    }),
  }),
]).optional();

/** The sampling fields chat and completions both take, as OpenAI names them. */
export const SAMPLING = {
  max_tokens: z.number().int().min(1).max(1_000_000).nullable().optional(),
  temperature: z.number().min(0).max(2).default(1),
  top_p: z.number().gt(0).max(1).optional(),
  seed: z.number().int().min(0).optional(),
  stop: stop.nullable(),
  stream: z.boolean().default(false),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullable().optional(),
  presence_penalty: penalty,
  frequency_penalty: penalty,
  /** Only one choice: more is refused by name rather than answered with one. */
  n: z.literal(1, { error: "n: only 1 choice per request" }).nullable().optional(),
  logprobs: z.literal(false, { error: "logprobs: not supported" }).nullable().optional(),
  user: z.string().optional(),
  priority: z.enum(JOB_PRIORITIES).optional(),
};

/** Fields OpenAI clients send that change nothing here (bookkeeping on OpenAI's side). */
const NO_EFFECT = ["store", "metadata", "service_tier"];

/**
 * Checks a parsed OpenAI request body against `schema`: a field loam does not take (`tools`,
 * `logit_bias`, `top_logprobs`, …) is a 400 naming it, never silently dropped.
 */
export function openAiBody<T extends z.ZodObject>(body: unknown, schema: T): z.infer<T> {
  if (body !== null && typeof body === "object" && !Array.isArray(body)) {
    const known = new Set([...Object.keys(schema.shape), ...NO_EFFECT]);
    for (const key of Object.keys(body)) {
      if (!known.has(key)) {
        throw new HttpError(400, "unsupported_parameter", `${key}: not supported by loam`, {}, key);
      }
    }
  }
  return validBody(schema, body);
}

/** The generation settings of a parsed chat or completion body. */
export function generationOptions(
  body: {
    temperature: number;
    top_p?: number;
    seed?: number;
    stop?: string | string[] | null;
    presence_penalty?: number;
    frequency_penalty?: number;
    response_format?: z.infer<typeof ResponseFormat>;
  },
  maxTokens: number,
): GenerationOptions {
  const format = body.response_format;
  return {
    maxTokens,
    temperature: body.temperature,
    topP: body.top_p,
    seed: body.seed,
    stop: stopList(body.stop),
    presencePenalty: body.presence_penalty,
    frequencyPenalty: body.frequency_penalty,
    ...(format?.type === "json_object" ? { format: { type: "json" as const } } : {}),
    ...(format?.type === "json_schema"
      ? {
        format: format.json_schema.schema
          ? {
            type: "json_schema" as const,
            schema: format.json_schema.schema,
            from: "response_format.json_schema.schema",
          }
          : { type: "json" as const },
      }
      : {}),
  };
}

/** `response_format`, for the routes whose output it can hold to a grammar. */
export const RESPONSE_FORMAT = { response_format: ResponseFormat };

/** OpenAI's `finish_reason`: `length` when `max_tokens` cut it, else `stop`. */
export const finishReason = (g: Generation) => g.finishReason === "length" ? "length" : "stop";

/**
 * One OpenAI POST route over an LLM (`infer:run`, errors in OpenAI's shape): the body read
 * against `schema` (unknown fields refused), the model looked up (and the job sent to a peer
 * when it is not here or its queue is full), then `answer` run with job refusals turned into
 * 429/503/504.
 */
export function llmRoute<T extends z.ZodObject<{ model: z.ZodString }>>(
  path: string,
  schema: T,
  deps: LlmDeps,
  answer: (req: Request, body: z.infer<T>, llm: LlmInference, client: string) => Promise<Response>,
): Route {
  return {
    method: "POST",
    path,
    scope: "infer:run",
    errors: "openai",
    handler: async ({ req, token }) => {
      const routed = await routableLlmBody(
        deps,
        req,
        path,
        (json) => openAiBody(json, schema),
        token,
      );
      if (routed.forwarded) return routed.forwarded;
      const body = routed.body;
      const llm = loadedLlm(deps, body.model as string);
      return await answerJobErrors(() => answer(req, body, llm, token?.name ?? "anonymous"));
    },
  };
}

/**
 * An LLM job's body, read and checked by `check`, then sent to a peer when its model is not here
 * or its queue is full: `forwarded` is the peer's answer; without it the job runs here.
 */
export async function routableLlmBody<T extends { model: string }>(
  deps: LlmDeps,
  req: Request,
  path: string,
  check: (json: unknown) => T,
  token?: TokenRecord,
): Promise<{ body: T; forwarded?: Response }> {
  const bytes = await readBodyBytes(req, deps.maxInputBytes);
  const body = check(jsonOf(bytes));
  const model = body.model;
  const forwarded = await forwardedJob(deps.routing, deps.llm(model), {
    req,
    path,
    model,
    body: bytes,
    token,
  });
  return forwarded ? { body, forwarded } : { body };
}

/** The `id` and `created` (Unix seconds) of one answer, `prefix` naming its kind (`chatcmpl`). */
export function answerIds(prefix: string): { id: string; created: number } {
  return {
    id: `${prefix}-${crypto.randomUUID().replaceAll("-", "")}`,
    created: Math.floor(Date.now() / 1000),
  };
}
