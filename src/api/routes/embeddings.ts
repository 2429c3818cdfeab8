import { z } from "zod";
import { jsonResponse } from "../../system/http_error.ts";
import type { Route } from "../router.ts";
import { type LlmDeps, llmRoute } from "../openai.ts";
import type { LlmInference } from "../../runtimes/gguf_model.ts";
import { JOB_PRIORITIES } from "../../runtimes/job_queue.ts";

/** Inputs embedded in one request at most (OpenAI allows 2,048). */
const MAX_INPUTS = 2048;

/** OpenAI's embeddings request: text inputs (token arrays are refused by name). */
const EmbeddingsBody = z.object({
  model: z.string().min(1),
  input: z.union([z.string(), z.array(z.string()).min(1).max(MAX_INPUTS)]),
  encoding_format: z.enum(["float", "base64"]).default("float"),
  dimensions: z.undefined({ error: "dimensions: the model's own size only" }).optional(),
  user: z.string().optional(),
  priority: z.enum(JOB_PRIORITIES).optional(),
});

/** A vector as OpenAI's `base64` encoding gives it: little-endian float32 bytes. */
function base64Of(vector: number[]): string {
  const bytes = new Uint8Array(new Float32Array(vector).buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

/**
 * `POST /v1/embeddings`: one vector per input from the GGUF model's embedding context (made at
 * the first request), as floats or as OpenAI's base64 (what its Node client asks for).
 */
export function embeddingRoutes(deps: LlmDeps): Route[] {
  return [llmRoute("/v1/embeddings", EmbeddingsBody, deps, embed)];
}

async function embed(
  req: Request,
  body: z.infer<typeof EmbeddingsBody>,
  llm: LlmInference,
  client: string,
): Promise<Response> {
  const inputs = typeof body.input === "string" ? [body.input] : body.input;
  const { vectors, promptTokens } = await llm.embed(
    { client: body.user ?? client, priority: body.priority, signal: req.signal },
    inputs,
  );
  return jsonResponse({
    object: "list",
    data: vectors.map((vector, index) => ({
      object: "embedding",
      index,
      embedding: body.encoding_format === "base64" ? base64Of(vector) : vector,
    })),
    model: body.model,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  });
}
