import type { InferenceSession, Tensor } from "onnxruntime-node";
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
import { inferOnnx } from "./onnx_http.ts";
import type { JobRequest } from "./job_queue.ts";
import { type InferenceSettings, type ModelInstance, ModelInstances } from "./model_instances.ts";
import {
  loadOnnxRuntime,
  type OnnxRuntime,
  openSession,
  type SkippedProvider,
} from "./onnx_providers.ts";
import { TensorError, type TensorType, type TensorValue } from "./tensors.ts";

/** How a model's input or output looks: name, element type and shape (strings = symbolic). */
export interface TensorSpec {
  name: string;
  type: string;
  shape: (number | string)[];
}

/** An ONNX instance as the inference route uses it. */
export interface OnnxInference {
  /** The model's inputs and outputs. */
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  provider: string | null;
  run(
    request: JobRequest,
    inputs: Record<string, TensorValue>,
    outputs?: string[],
  ): Promise<Record<string, TensorValue>>;
}

interface Loaded extends ModelInstance {
  session?: InferenceSession;
  ort?: OnnxRuntime;
  provider?: string;
  skipped: SkippedProvider[];
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** The model file's size: onnxruntime holds its weights (it reports no memory of its own). */
  bytes?: number;
}

function specs(metadata: readonly InferenceSession.ValueMetadata[]): TensorSpec[] {
  return metadata.map((m) =>
    m.isTensor
      ? { name: m.name, type: m.type, shape: [...m.shape] }
      : { name: m.name, type: "non-tensor", shape: [] }
  );
}

/** Checks inputs against the model's: names, element types and fixed dimensions. */
function checkInputs(expected: TensorSpec[], inputs: Record<string, TensorValue>): void {
  const names = expected.map((s) => s.name);
  for (const name of Object.keys(inputs)) {
    if (!names.includes(name)) {
      throw new TensorError(`unknown input ${name}; the model's inputs are ${names.join(", ")}`);
    }
  }
  for (const spec of expected) {
    const input = inputs[spec.name];
    if (!input) throw new TensorError(`missing input ${spec.name} (${spec.type} [${spec.shape}])`);
    if (spec.type !== "non-tensor" && input.type !== spec.type) {
      throw new TensorError(
        `input ${spec.name}: the model expects ${spec.type}, got ${input.type}`,
      );
    }
    if (spec.shape.length === 0) continue;
    const fits = input.dims.length === spec.shape.length &&
      spec.shape.every((d, i) => typeof d !== "number" || d < 0 || d === input.dims[i]);
    if (!fits) {
      throw new TensorError(
        `input ${spec.name}: the model expects shape [${spec.shape}], got [${input.dims}]`,
      );
    }
  }
}

/**
 * `onnx_model`: the verified blob loaded with onnxruntime-node on the directive's execution
 * providers in order, falling back to CPU (the instance reports the provider in use and why
 * others were skipped). Inference requests run through the instance's job queue.
 */
export class OnnxModelAdapter implements RuntimeAdapter {
  readonly kind = "onnx_model" as const;
  readonly #settings: InferenceSettings;
  readonly #loaded: ModelInstances<Loaded>;

  constructor(settings: InferenceSettings) {
    this.#settings = settings;
    this.#loaded = new ModelInstances<Loaded>(settings, async (m) => await m.session?.release());
  }

  /** Loads the model; an abort before or during the load leaves no instance (see `activation`). */
  async activate(
    directive: DeploymentDirective,
    blobPath: string,
    signal: AbortSignal,
  ): Promise<Instance> {
    const instanceId = `onnx-${directive.directive_id}`;
    const provider = await this.#loaded.activation(
      instanceId,
      signal,
      () => this.#load(directive, instanceId, blobPath),
    );
    return { instance_id: instanceId, provider };
  }

  async resume(directive: DeploymentDirective, instanceId: string, blobPath: string) {
    await this.#load(directive, instanceId, blobPath);
  }

  deactivate(instanceId: string): Promise<void> {
    return this.#loaded.remove(instanceId);
  }

  stopAll(): Promise<void> {
    return this.#loaded.removeAll();
  }

  /** The instance's log: its load (provider, skipped providers). */
  logs(instanceId: string, count?: number): LogLine[] | undefined {
    return this.#loaded.logs(instanceId, count);
  }

  /** Each loaded model's weights (its file's size: onnxruntime reports no memory). */
  usage(): Promise<Map<string, WorkloadUsage>> {
    return Promise.resolve(this.#loaded.usage((m) => m.bytes));
  }

  list(): InstanceView[] {
    return this.#loaded.views("onnx_model", (m) => ({
      provider: m.provider ?? null,
      skipped_providers: m.skipped,
      inputs: m.inputs,
      outputs: m.outputs,
    }));
  }

  /**
   * Runs an instance's model on the request's tensors (JSON, raw bytes or multipart: see
   * onnx_http.ts); 503 with Retry-After while the model loads; undefined for no such instance.
   */
  infer(instanceId: string, call: InferCall): Promise<Response> | undefined {
    const model = this.model(instanceId);
    if (model === undefined) return undefined;
    if (model === "loading") {
      return Promise.reject(
        new HttpError(503, "loading", `instance ${instanceId} is loading its model`, {
          "retry-after": "1",
        }),
      );
    }
    return answerJobErrors(() => inferOnnx(call.request, model, call.client, call.maxInputBytes));
  }

  /** The model behind an instance: "loading" while it loads, undefined when there is none. */
  model(instanceId: string): OnnxInference | "loading" | undefined {
    const loaded = this.#loaded.get(instanceId);
    if (!loaded) return undefined;
    const session = loaded.session;
    if (loaded.state === "loading" || !session) return "loading";
    return {
      inputs: loaded.inputs,
      outputs: loaded.outputs,
      provider: loaded.provider ?? null,
      run: (request, inputs, outputs) => this.#run(loaded, session, request, inputs, outputs),
    };
  }

  /**
   * Runs the model through the instance's job queue and returns the outputs (`outputs` names
   * some; all when absent). Throws TensorError for inputs the model does not take.
   */
  async #run(
    loaded: Loaded,
    session: InferenceSession,
    request: JobRequest,
    inputs: Record<string, TensorValue>,
    outputs?: string[],
  ): Promise<Record<string, TensorValue>> {
    checkInputs(loaded.inputs, inputs);
    const outputNames = loaded.outputs.map((o) => o.name);
    for (const name of outputs ?? []) {
      if (!outputNames.includes(name)) {
        throw new TensorError(`unknown output ${name}; the model's outputs are ${outputNames}`);
      }
    }
    const ort = loaded.ort!;
    const feeds: Record<string, Tensor> = {};
    for (const [name, value] of Object.entries(inputs)) {
      feeds[name] = new ort.Tensor(value.type, value.data, value.dims);
    }
    const results = await loaded.queue.run(
      request,
      () => outputs ? session.run(feeds, outputs) : session.run(feeds),
    );
    const answer: Record<string, TensorValue> = {};
    for (const [name, tensor] of Object.entries(results)) {
      answer[name] = {
        type: tensor.type as TensorType,
        dims: [...tensor.dims],
        data: tensor.data as TensorValue["data"],
      };
    }
    return answer;
  }

  async #load(directive: DeploymentDirective, instanceId: string, blobPath: string) {
    const type = directive.artifact.artifact_type;
    if (type.type !== "onnx_model") throw new Error(`not an ONNX model: ${type.type}`);
    const { threads, logger } = this.#settings;
    const fields = { skipped: [], inputs: [], outputs: [] };
    const loaded = await this.#loaded.load(
      instanceId,
      directive,
      fields,
      async (m) => {
        const opened = await openSession(blobPath, type.execution_providers, threads);
        Object.assign(m, {
          ort: await loadOnnxRuntime(),
          session: opened.session,
          provider: opened.provider,
          skipped: opened.skipped,
          inputs: specs(opened.session.inputMetadata),
          outputs: specs(opened.session.outputMetadata),
          bytes: (await Deno.stat(blobPath)).size,
        });
        const skipped = opened.skipped.map((s) => `${s.provider} skipped: ${s.reason}`);
        return [`execution provider ${opened.provider}`, ...skipped].join("; ");
      },
    ).catch((err) => {
      throw new Error(`ONNX model did not load: ${(err as Error).message.split("\n")[0]}`);
    });
    if (loaded.skipped.length > 0) {
      logger.warn("execution providers skipped", {
        instance_id: instanceId,
        provider: loaded.provider,
        skipped: loaded.skipped,
      });
    }
    return loaded.provider;
  }
}
