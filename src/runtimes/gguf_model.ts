import type {
  ChatHistoryItem,
  ChatModelFunctions,
  Llama,
  LlamaChat,
  LlamaCompletion,
  LlamaContext,
  LlamaContextSequence,
  LlamaEmbeddingContext,
  LlamaGrammar,
  LlamaModel,
} from "node-llama-cpp";
import { checkGgufFile } from "./gguf_check.ts";
import type { DeploymentDirective } from "../protocol/directive.ts";
import type {
  InferCall,
  Instance,
  InstanceView,
  RuntimeAdapter,
  WorkloadUsage,
} from "./adapter.ts";
import type { LogLine } from "./log_ring.ts";
import { HttpError } from "../system/http_error.ts";
import { answerJobErrors } from "./job_errors.ts";
import { inferLlm } from "./llm_http.ts";
import type { JobRequest } from "./job_queue.ts";
import { countTokens } from "./job_account.ts";
import { type InferenceSettings, type ModelInstance, ModelInstances } from "./model_instances.ts";

/** GGUF adapter settings on top of the shared inference ones. */
export interface GgufSettings extends InferenceSettings {
  /** Context length when the directive gives none. */
  contextLength: number;
  /** GPU layers when the directive gives none; -1 = all with a GPU, else 0. */
  gpuLayers: number;
  /** Whether this node has an NVIDIA GPU (or a Jetson) llama.cpp could use. */
  hasGpu: boolean;
}

/** Sampling and stopping settings of one generation. */
export interface GenerationOptions {
  maxTokens: number;
  temperature: number;
  topP?: number;
  /** Without one (and with a temperature), each generation draws its own. */
  seed?: number;
  stop: string[];
  /** OpenAI's `presence_penalty` and `frequency_penalty` over the recent tokens. */
  presencePenalty?: number;
  frequencyPenalty?: number;
  /** Constrains the output by grammar: any JSON value, or JSON that matches a schema. */
  format?: { type: "json" } | JsonSchemaFormat;
  /**
   * Functions offered to the model (chat only, never with `format`): node-llama-cpp renders
   * them in the model's own function-calling syntax and the model decides whether to call.
   */
  functions?: Record<string, { description?: string; params?: unknown }>;
  /** Whether the model may make several calls at once (with `functions`). */
  parallelCalls?: boolean;
  /** Called with each piece of text as it is generated (streaming). */
  onText?: (text: string) => void;
}

/** Output held to a JSON schema; `from` names the request field the schema came from. */
export interface JsonSchemaFormat {
  type: "json_schema";
  schema: unknown;
  from: string;
}

/** What an embedding request produced. */
export interface Embeddings {
  vectors: number[][];
  promptTokens: number;
}

/** How a generation ended, in OpenAI's words: `stop` (end or stop sequence) or `length`. */
export type FinishReason = "stop" | "length" | "cancelled";

/** What a generation produced. */
export interface Generation {
  text: string;
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  seconds: number;
  /** The functions the model called (with `functions`). */
  functionCalls?: ToolCallRecord[];
}

/** A function call: what the model asked for, and in history the result it got. */
export interface ToolCallRecord {
  name: string;
  params: unknown;
  /** The caller's answer (history only). */
  result?: string;
}

/** A chat message in OpenAI's shape. */
export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
  /** An assistant turn's function calls, each with its result. */
  toolCalls?: ToolCallRecord[];
}

/** A loaded LLM as the inference routes use it. */
export interface LlmInference {
  instanceId: string;
  /** Names a client may use as `model`: the instance id, the artifact name, the manifest id. */
  names: string[];
  /** `sha256:<hex>` of the model file. */
  blobHash: string;
  /** Its queue is full: a new job here would be refused, so a peer holding it gets the job. */
  full: boolean;
  contextLength: number;
  /** Continues `prompt` (a plain completion). */
  complete(request: JobRequest, prompt: string, options: GenerationOptions): Promise<Generation>;
  /** Answers the conversation with the model's chat template. */
  chat(
    request: JobRequest,
    messages: ChatMessage[],
    options: GenerationOptions,
  ): Promise<Generation>;
  /** One embedding vector per input, from the model's embedding context. */
  embed(request: JobRequest, inputs: string[]): Promise<Embeddings>;
}

interface Loaded extends ModelInstance {
  gpuLayers: number;
  /** Recent generation speed (a moving average over jobs); null before the first. */
  tokensPerSecond: number | null;
  contextLength: number;
  model?: LlamaModel;
  context?: LlamaContext;
  sequence?: LlamaContextSequence;
  completion?: LlamaCompletion;
  chat?: LlamaChat;
  /** Made at the first embedding request (a second context: memory only when used). */
  embedding?: Promise<LlamaEmbeddingContext>;
}

type LlamaModule = typeof import("node-llama-cpp");

/**
 * node-llama-cpp's refusal of a conversation that cannot fit the context even after its
 * context shift drops old turns, as the client's error (a 400), not the agent's (a 500).
 */
function tooLong(err: unknown, contextLength: number): HttpError | undefined {
  if (!/history that fits the context size/.test((err as Error)?.message ?? "")) return undefined;
  return new HttpError(
    400,
    "context_length_exceeded",
    `messages: the conversation (with its system prompt and tools) does not fit the model's ` +
      `context of ${contextLength} tokens`,
    {},
    "messages",
  );
}

function historyOf(messages: ChatMessage[]): ChatHistoryItem[] {
  return messages.map((m): ChatHistoryItem =>
    m.role === "system"
      ? { type: "system", text: m.content }
      : m.role === "user"
      ? { type: "user", text: m.content }
      : {
        type: "model",
        response: [
          ...(m.content || !m.toolCalls ? [m.content] : []),
          ...(m.toolCalls ?? []).map((c) => ({
            type: "functionCall" as const,
            name: c.name,
            params: c.params,
            result: c.result ?? "",
          })),
        ],
      }
  );
}

/**
 * `gguf_model`: the verified blob loaded with node-llama-cpp (llama.cpp), its layers on the GPU
 * when one is detected, on the CPU otherwise; completions and chat run one at a time through the
 * instance's job queue, and stop as soon as the client goes away.
 */
export class GgufModelAdapter implements RuntimeAdapter {
  readonly kind = "gguf_model" as const;
  readonly #settings: GgufSettings;
  readonly #loaded: ModelInstances<Loaded>;
  #module?: Promise<LlamaModule>;
  #llama?: Promise<Llama>;

  constructor(settings: GgufSettings) {
    this.#settings = settings;
    this.#loaded = new ModelInstances<Loaded>(settings, (m) => this.#unload(m));
  }

  /** Loads the model; an abort before or during the load leaves no instance (see `activation`). */
  async activate(
    directive: DeploymentDirective,
    blobPath: string,
    signal: AbortSignal,
  ): Promise<Instance> {
    const instanceId = `llm-${directive.directive_id}`;
    const loaded = await this.#loaded.activation(
      instanceId,
      signal,
      () => this.#load(directive, instanceId, blobPath),
    );
    return { instance_id: instanceId, provider: this.#provider(loaded) };
  }

  async resume(directive: DeploymentDirective, instanceId: string, blobPath: string) {
    await this.#load(directive, instanceId, blobPath);
  }

  deactivate(instanceId: string): Promise<void> {
    return this.#loaded.remove(instanceId);
  }

  async stopAll(): Promise<void> {
    await this.#loaded.removeAll();
    const llama = await this.#llama?.catch(() => undefined);
    await llama?.dispose();
  }

  /** The instance's log: its load (provider, context, GPU layers). */
  logs(instanceId: string, count?: number): LogLine[] | undefined {
    return this.#loaded.logs(instanceId, count);
  }

  /** Each loaded model's weights and context state (llama.cpp's own figures). */
  usage(): Promise<Map<string, WorkloadUsage>> {
    return Promise.resolve(
      this.#loaded.usage((m) =>
        m.model && m.context ? m.model.size + m.context.stateSize : undefined
      ),
    );
  }

  list(): InstanceView[] {
    return this.#loaded.views("gguf_model", (m) => ({
      provider: this.#provider(m),
      tokens_per_second: m.tokensPerSecond,
      context_length: m.contextLength,
      gpu_layers: m.gpuLayers,
    }));
  }

  /**
   * A plain completion on an instance (`{prompt, max_tokens, …, stream}`: see llm_http.ts);
   * 503 with Retry-After while the model loads; undefined for no such instance.
   */
  infer(instanceId: string, call: InferCall): Promise<Response> | undefined {
    if (!this.#loaded.get(instanceId)) return undefined;
    const llm = this.model(instanceId);
    if (llm === undefined) return undefined;
    if (llm === "loading") {
      return Promise.reject(
        new HttpError(503, "loading", `model ${instanceId} is loading`, { "retry-after": "1" }),
      );
    }
    return answerJobErrors(() => inferLlm(call.request, llm, call.client, call.maxInputBytes));
  }

  /**
   * The LLM an instance id or model name refers to: "loading" while it loads, undefined when
   * there is none.
   */
  model(nameOrId: string): LlmInference | "loading" | undefined {
    const entry = this.#loaded.find(nameOrId);
    if (!entry) return undefined;
    const [instanceId, loaded] = entry;
    if (loaded.state === "loading") return "loading";
    return {
      instanceId,
      names: loaded.names,
      blobHash: loaded.blobHash,
      full: loaded.queue.full,
      contextLength: loaded.contextLength,
      complete: (request, prompt, options) =>
        this.#generate(instanceId, loaded, request, options, async (signal, common) => {
          const response = await loaded.completion!.generateCompletionWithMeta(prompt, {
            ...common,
            signal,
            stopOnAbortSignal: true,
          });
          return { text: response.response, stopReason: response.metadata.stopReason };
        }),
      chat: (request, messages, options) =>
        this.#generate(instanceId, loaded, request, options, async (signal, common) => {
          const { grammar, ...rest } = common;
          const response = await loaded.chat!.generateResponse(historyOf(messages), {
            ...rest,
            signal,
            stopOnAbortSignal: true,
            ...(options.functions
              ? {
                functions: options.functions as ChatModelFunctions,
                maxParallelFunctionCalls: options.parallelCalls === false ? 1 : undefined,
              }
              : { grammar }),
          }).catch((err) => {
            throw tooLong(err, loaded.contextLength) ?? err;
          });
          return {
            text: response.response,
            stopReason: response.metadata.stopReason,
            functionCalls: response.functionCalls?.map((c) => ({
              name: c.functionName,
              params: c.params,
            })),
          };
        }),
      embed: (request, inputs) => this.#embed(loaded, request, inputs),
    };
  }

  /** Embeds each input in turn, as one job; the embedding context is made on first use. */
  #embed(loaded: Loaded, request: JobRequest, inputs: string[]): Promise<Embeddings> {
    return loaded.queue.run(request, async (signal) => {
      loaded.embedding ??= loaded.model!.createEmbeddingContext({
        contextSize: loaded.contextLength,
        threads: this.#settings.threads,
      });
      const context = await loaded.embedding;
      const vectors: number[][] = [];
      let promptTokens = 0;
      for (const input of inputs) {
        signal.throwIfAborted();
        const tokens = loaded.model!.tokenize(input);
        if (tokens.length > loaded.contextLength) {
          throw new HttpError(
            400,
            "context_length_exceeded",
            `input ${vectors.length} is ${tokens.length} tokens; the context holds ${loaded.contextLength}`,
            {},
            "input",
          );
        }
        promptTokens += tokens.length;
        vectors.push([...(await context.getEmbeddingFor(tokens)).vector]);
      }
      countTokens(promptTokens, 0);
      return { vectors, promptTokens };
    });
  }

  /**
   * The grammar that holds the output to `format`; a schema llama.cpp cannot take is a 400
   * naming the field it came from.
   */
  async #grammar(format: NonNullable<GenerationOptions["format"]>): Promise<LlamaGrammar> {
    const llama = await this.#binding();
    if (format.type === "json") return await llama.getGrammarFor("json");
    try {
      // deno-lint-ignore no-explicit-any
      return await llama.createGrammarForJsonSchema(format.schema as any);
    } catch (err) {
      throw new HttpError(
        400,
        "invalid_request",
        `${format.from}: not a JSON schema llama.cpp's grammar takes: ${(err as Error).message}`,
        {},
        format.from.split(/[.[]/)[0],
      );
    }
  }

  /** Runs one generation as a job: a clean sequence, token counting, metrics. */
  async #generate(
    instanceId: string,
    loaded: Loaded,
    request: JobRequest,
    options: GenerationOptions,
    run: (
      signal: AbortSignal,
      common: {
        maxTokens: number;
        temperature: number;
        topP?: number;
        seed?: number;
        customStopTriggers?: string[];
        repeatPenalty?: { frequencyPenalty?: number; presencePenalty?: number };
        grammar?: LlamaGrammar;
        onTextChunk?: (text: string) => void;
        onToken: (tokens: unknown[]) => void;
      },
    ) => Promise<{ text: string; stopReason: string; functionCalls?: ToolCallRecord[] }>,
  ): Promise<Generation> {
    const grammar = options.format ? await this.#grammar(options.format) : undefined;
    // node-llama-cpp builds the functions' grammar mid-generation: a bad schema is refused first
    for (const [name, { params }] of Object.entries(options.functions ?? {})) {
      if (params) {
        await this.#grammar({ type: "json_schema", schema: params, from: `tools.${name}` });
      }
    }
    const penalties = options.presencePenalty !== undefined ||
      options.frequencyPenalty !== undefined;
    return await loaded.queue.run(request, async (signal) => {
      const sequence = loaded.sequence!;
      await sequence.clearHistory(); // every job starts from an empty context: same input, same output
      const meter = sequence.tokenMeter;
      const evaluatedBefore = meter.usedInputTokens + meter.usedOutputTokens;
      let generated = 0;
      /**
       * Tokens evaluated when the first token comes: the prompt, and only it (the meter counts
       * the prompt's last token as output: it gave the first logits).
       */
      let promptTokens: number | undefined;
      const started = performance.now();
      const { text, stopReason, functionCalls } = await run(signal, {
        maxTokens: options.maxTokens,
        temperature: options.temperature,
        ...(options.topP !== undefined ? { topP: options.topP } : {}),
        // llama.cpp's default seed repeats itself: without one, each generation draws its own
        seed: options.seed ?? crypto.getRandomValues(new Uint32Array(1))[0]!,
        ...(options.stop.length > 0 ? { customStopTriggers: options.stop } : {}),
        ...(penalties
          ? {
            repeatPenalty: {
              frequencyPenalty: options.frequencyPenalty,
              presencePenalty: options.presencePenalty,
            },
          }
          : {}),
        ...(grammar ? { grammar } : {}),
        ...(options.onText ? { onTextChunk: options.onText } : {}),
        onToken: (tokens) => {
          promptTokens ??= meter.usedInputTokens + meter.usedOutputTokens - evaluatedBefore;
          generated += tokens.length;
        },
      });
      const seconds = (performance.now() - started) / 1000;
      this.#settings.metrics.generated(instanceId, generated, seconds);
      if (generated > 0 && seconds > 0) {
        const rate = generated / seconds;
        loaded.tokensPerSecond = loaded.tokensPerSecond === null
          ? rate
          : loaded.tokensPerSecond * 0.8 + rate * 0.2;
      }
      const prompt = promptTokens ??
        meter.usedInputTokens + meter.usedOutputTokens - evaluatedBefore;
      countTokens(prompt, generated);
      return {
        text,
        finishReason: stopReason === "maxTokens"
          ? "length"
          : stopReason === "abort"
          ? "cancelled"
          : "stop",
        // counted when the first token came: a context shift later re-evaluates, it is no prompt
        promptTokens: prompt,
        completionTokens: generated,
        seconds,
        ...(functionCalls && functionCalls.length > 0 ? { functionCalls } : {}),
      };
    });
  }

  #provider(loaded: Loaded): string {
    return loaded.gpuLayers > 0 ? "gpu" : "cpu";
  }

  #llamaModule(): Promise<LlamaModule> {
    this.#module ??= import("node-llama-cpp");
    return this.#module;
  }

  /** One llama.cpp binding for all instances; never builds or downloads anything. */
  #binding(): Promise<Llama> {
    this.#llama ??= this.#llamaModule().then((m) =>
      m.getLlama({
        gpu: this.#settings.hasGpu ? "auto" : false,
        build: "never",
        skipDownload: true,
        progressLogs: false,
        logLevel: m.LlamaLogLevel.error,
        maxThreads: this.#settings.threads,
      })
    );
    const binding = this.#llama;
    // a binding that failed to load is not kept: the next deployment tries again
    binding.catch(() => {
      if (this.#llama === binding) this.#llama = undefined;
    });
    return binding;
  }

  async #load(
    directive: DeploymentDirective,
    instanceId: string,
    blobPath: string,
  ): Promise<Loaded> {
    const type = directive.artifact.artifact_type;
    if (type.type !== "gguf_model") throw new Error(`not a GGUF model: ${type.type}`);
    const { threads } = this.#settings;
    const configured = type.gpu_layers ?? this.#settings.gpuLayers;
    const fields = {
      gpuLayers: 0,
      tokensPerSecond: null,
      contextLength: type.context_length ?? directive.manifest?.context_length ??
        this.#settings.contextLength,
    };
    return await this.#loaded.load(instanceId, directive, fields, async (loaded) => {
      // llama.cpp parses the file in native code, in this process: only a consistent one
      await checkGgufFile(blobPath);
      const m = await this.#llamaModule();
      const llama = await this.#binding();
      const useGpu = llama.gpu !== false;
      const gpuLayers = !useGpu ? 0 : configured < 0 ? "max" as const : configured;
      loaded.model = await llama.loadModel({ modelPath: blobPath, gpuLayers });
      loaded.gpuLayers = loaded.model.gpuLayers;
      loaded.contextLength = Math.min(loaded.contextLength, loaded.model.trainContextSize);
      loaded.context = await loaded.model.createContext({
        contextSize: loaded.contextLength,
        threads,
        sequences: 1,
      });
      loaded.sequence = loaded.context.getSequence();
      loaded.completion = new m.LlamaCompletion({ contextSequence: loaded.sequence });
      loaded.chat = new m.LlamaChat({ contextSequence: loaded.sequence });
      return `${this.#provider(loaded)}, context ${loaded.contextLength}, ` +
        `${loaded.gpuLayers} GPU layers`;
    }).catch((err) => {
      throw new Error(`GGUF model did not load: ${(err as Error).message.split("\n")[0]}`);
    });
  }

  async #unload(loaded: Loaded): Promise<void> {
    await (await loaded.embedding?.catch(() => undefined))?.dispose();
    loaded.chat?.dispose();
    loaded.completion?.dispose();
    await loaded.context?.dispose();
    await loaded.model?.dispose();
  }
}
