import { z } from "zod";
import type { Route } from "../router.ts";
import { HttpError, jsonResponse } from "../../system/http_error.ts";
import { readJsonBody, validBody } from "../../system/http_body.ts";
import type { PeerModel } from "../../mesh/peers.ts";
import { answerJobErrors } from "../../runtimes/job_errors.ts";
import { eventStream } from "../../runtimes/event_stream.ts";
import { stop, stopList } from "../../runtimes/llm_http.ts";
import type {
  ChatMessage,
  Generation,
  GenerationOptions,
  LlmInference,
} from "../../runtimes/gguf_model.ts";
import type { ModelView } from "../../deploy/models.ts";
import type { InstanceView } from "../../runtimes/adapter.ts";
import type { JobRequest } from "../../runtimes/job_queue.ts";
import { type LlmDeps, loadedLlm, routableLlmBody } from "../openai.ts";
import { VERSION } from "../../version.ts";

/**
 * The Ollama version `/api/version` reports: clients gate features on it, and loam answers the
 * routes as this release of Ollama does.
 */
const OLLAMA_COMPATIBLE = "0.6.4";

/** What the Ollama routes need from the agent. */
export interface OllamaDeps extends LlmDeps {
  models(): ModelView[];
  instances(): InstanceView[];
  /** Models connected fleet peers serve (`/api/tags` lists them with `location: "mesh"`). */
  meshModels(): PeerModel[];
}

/** Ollama's `options` that loam honours; `num_ctx` is taken and ignored (the deployment sets it). */
const Options = z.strictObject({
  temperature: z.number().min(0).max(2).optional(),
  top_p: z.number().gt(0).max(1).optional(),
  seed: z.number().int().min(0).optional(),
  num_predict: z.number().int().min(-2).max(1_000_000).optional(),
  stop: stop,
  presence_penalty: z.number().min(-2).max(2).optional(),
  frequency_penalty: z.number().min(-2).max(2).optional(),
  num_ctx: z.number().int().optional(),
}).optional();

const common = {
  model: z.string().min(1),
  stream: z.boolean().default(true),
  format: z.union([z.literal("json"), z.literal(""), z.record(z.string(), z.unknown())]).optional(),
  options: Options,
  keep_alive: z.union([z.string(), z.number()]).optional(),
};

const ChatBody = z.strictObject({
  ...common,
  messages: z.array(z.object({
    role: z.enum(["system", "user", "assistant"]),
    content: z.string(),
  })).min(1),
});

const GenerateBody = z.strictObject({
  ...common,
  prompt: z.string(),
  system: z.string().optional(),
});

const EmbedBody = z.strictObject({
  model: z.string().min(1),
  input: z.union([z.string(), z.array(z.string()).min(1).max(2048)]),
  keep_alive: z.union([z.string(), z.number()]).optional(),
  truncate: z.boolean().optional(),
});

const ShowBody = z.object({ model: z.string().min(1).optional(), name: z.string().optional() });

/** A body against a strict schema: an unknown field is a 400 naming it, as everywhere else. */
async function readBody<T extends z.ZodType>(req: Request, max: number, schema: T) {
  return validBody(schema, await readJsonBody(req, max));
}

function optionsOf(
  body: z.infer<typeof ChatBody> | z.infer<typeof GenerateBody>,
): GenerationOptions {
  const o = body.options ?? {};
  const predict = o.num_predict ?? -1;
  return {
    // Ollama's defaults: temperature 0.8; num_predict -1 (until the end: the context bounds it)
    maxTokens: predict < 0 ? 4096 : Math.max(1, predict),
    temperature: o.temperature ?? 0.8,
    topP: o.top_p,
    seed: o.seed,
    stop: stopList(o.stop),
    presencePenalty: o.presence_penalty,
    frequencyPenalty: o.frequency_penalty,
    ...(body.format === "json"
      ? { format: { type: "json" as const } }
      : typeof body.format === "object"
      ? { format: { type: "json_schema" as const, schema: body.format, from: "format" } }
      : {}),
  };
}

/** The closing fields of a chat or generate answer, durations in nanoseconds as Ollama gives. */
function done(g: Generation, started: number) {
  const ns = (seconds: number) => Math.round(seconds * 1e9);
  return {
    done: true,
    done_reason: g.finishReason === "length" ? "length" : "stop",
    total_duration: ns((performance.now() - started) / 1000),
    load_duration: 0,
    prompt_eval_count: g.promptTokens,
    eval_count: g.completionTokens,
    eval_duration: ns(g.seconds),
  };
}

/** A loaded GGUF model as Ollama lists it. */
function tagOf(model: ModelView, instances: InstanceView[]) {
  const instance = instances.find((i) => i.instance_id === model.instance_id);
  const name = model.name ?? model.instance_id!;
  return {
    name,
    model: name,
    modified_at: instance?.started_at ?? new Date(0).toISOString(),
    size: model.size_bytes,
    digest: model.blob_hash.slice("sha256:".length),
    details: {
      format: "gguf",
      family: "",
      parameter_size: "",
      quantization_level: "",
    },
  };
}

/** A GGUF model a fleet peer serves, as Ollama lists it (its size is not advertised). */
function meshTagOf(held: PeerModel) {
  const name = held.model.names[0] ?? held.model.instance_id;
  return {
    name,
    model: name,
    modified_at: new Date(0).toISOString(),
    size: 0,
    digest: held.model.blob_hash.slice("sha256:".length),
    details: { format: "gguf", family: "", parameter_size: "", quantization_level: "" },
    location: "mesh",
  };
}

/** The answer as one JSON object, or as NDJSON lines while it is generated (`stream`, default on). */
function answer(
  req: Request,
  stream: boolean,
  generate: (onText?: (text: string) => void, signal?: AbortSignal) => Promise<Generation>,
  piece: (text: string) => Record<string, unknown>,
): Promise<Response> {
  const started = performance.now();
  const head = (extra: Record<string, unknown>) => ({
    created_at: new Date().toISOString(),
    ...extra,
  });
  if (!stream) {
    return generate().then((g) => jsonResponse({ ...head(piece(g.text)), ...done(g, started) }));
  }
  return eventStream(async (send, cancelled) => {
    const g = await generate(
      (text) => send({ ...head(piece(text)), done: false }),
      AbortSignal.any([req.signal, cancelled]),
    );
    send({ ...head(piece("")), ...done(g, started) });
  }, "ndjson");
}

/**
 * `/api/chat` or `/api/generate`: the body read against `schema`, the model looked up, `run`
 * generating with the body's options, the answer in one object or streamed as NDJSON, each
 * piece shaped by `piece` (with the model's name).
 */
function generationRoute<T extends typeof ChatBody | typeof GenerateBody>(
  deps: OllamaDeps,
  path: string,
  schema: T,
  run: (
    llm: LlmInference,
    body: z.infer<T>,
    request: JobRequest,
    options: GenerationOptions,
  ) => Promise<Generation>,
  piece: (text: string) => Record<string, unknown>,
): Route {
  return {
    method: "POST",
    path,
    scope: "infer:run",
    handler: async ({ req, token }) => {
      const routed = await routableLlmBody(
        deps,
        req,
        path,
        (json) => validBody(schema, json) as z.infer<T>,
        token,
      );
      if (routed.forwarded) return routed.forwarded;
      const body = routed.body;
      const llm = loadedLlm(deps, body.model);
      const client = token?.name ?? "anonymous";
      return await answerJobErrors(() =>
        answer(
          req,
          body.stream,
          (onText, signal) =>
            run(llm, body, { client, signal: signal ?? req.signal }, {
              ...optionsOf(body),
              ...(onText ? { onText } : {}),
            }),
          (text) => ({ model: body.model, ...piece(text) }),
        )
      );
    },
  };
}

/**
 * Ollama's API on the same port, for the tools that speak only it (Open WebUI's Ollama
 * connection, the `ollama` npm and Python clients): `/api/tags`, `/api/show`, `/api/version`,
 * `/api/chat` and `/api/generate` (NDJSON streaming by default, as Ollama does), `/api/embed`.
 * Same scopes as the OpenAI routes; see `api.ollama_listen` for clients that send no token.
 */
export function ollamaRoutes(deps: OllamaDeps): Route[] {
  const loadedGguf = () =>
    deps.models().filter((m) => m.format === "gguf" && m.status === "Loaded");
  return [
    {
      method: "GET",
      path: "/api/version",
      scope: null,
      handler: () => jsonResponse({ version: OLLAMA_COMPATIBLE, loam: VERSION }),
    },
    {
      method: "GET",
      path: "/api/tags",
      scope: ["infer:run", "status:read"],
      handler: () => {
        const instances = deps.instances();
        const local = loadedGguf().map((m) => ({ ...tagOf(m, instances), location: "local" }));
        const names = new Set(local.map((m) => m.name));
        const mesh = new Map<string, ReturnType<typeof meshTagOf>>();
        for (const held of deps.meshModels()) {
          const tag = meshTagOf(held);
          if (held.model.adapter === "gguf_model" && !names.has(tag.name)) mesh.set(tag.name, tag);
        }
        return jsonResponse({ models: [...local, ...mesh.values()] });
      },
    },
    {
      method: "POST",
      path: "/api/show",
      scope: ["infer:run", "status:read"],
      handler: async ({ req }) => {
        const body = await readBody(req, deps.maxInputBytes, ShowBody);
        const name = body.model ?? body.name;
        if (!name) throw new HttpError(400, "invalid_request", "model: required", {}, "model");
        const llm: LlmInference = loadedLlm(deps, name);
        const model = loadedGguf().find((m) => m.instance_id === llm.instanceId);
        return jsonResponse({
          modelfile: "",
          parameters: "",
          template: "",
          details: model ? tagOf(model, deps.instances()).details : {},
          model_info: { "general.names": llm.names, "llama.context_length": llm.contextLength },
          capabilities: ["completion", "embedding"],
        });
      },
    },
    generationRoute(
      deps,
      "/api/chat",
      ChatBody,
      (llm, body, request, options) => llm.chat(request, body.messages as ChatMessage[], options),
      (content) => ({
        message: { role: "assistant", content },
      }),
    ),
    generationRoute(
      deps,
      "/api/generate",
      GenerateBody,
      (llm, body, request, options) =>
        llm.complete(
          request,
          body.system ? `${body.system}\n\n${body.prompt}` : body.prompt,
          options,
        ),
      (response) => ({ response }),
    ),
    {
      method: "POST",
      path: "/api/embed",
      scope: "infer:run",
      handler: async ({ req, token }) => {
        const routed = await routableLlmBody(
          deps,
          req,
          "/api/embed",
          (json) => validBody(EmbedBody, json),
          token,
        );
        if (routed.forwarded) return routed.forwarded;
        const body = routed.body;
        const llm = loadedLlm(deps, body.model);
        const inputs = typeof body.input === "string" ? [body.input] : body.input;
        return await answerJobErrors(async () => {
          const started = performance.now();
          const { vectors, promptTokens } = await llm.embed(
            { client: token?.name ?? "anonymous", signal: req.signal },
            inputs,
          );
          return jsonResponse({
            model: body.model,
            embeddings: vectors,
            total_duration: Math.round((performance.now() - started) * 1e6),
            prompt_eval_count: promptTokens,
          });
        });
      },
    },
  ];
}
