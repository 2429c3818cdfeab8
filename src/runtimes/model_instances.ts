import type { ArtifactKind, InstanceView, WorkloadUsage } from "./adapter.ts";
import type { DeploymentDirective } from "../protocol/directive.ts";
import { JobQueue } from "./job_queue.ts";
import type { JobMetrics } from "./job_metrics.ts";
import type { Logger } from "../system/logger.ts";
import { type LogLine, LogRing } from "./log_ring.ts";

/** Lines kept per model instance. */
const LOG_LINES = 200;

/** What every inference adapter needs: threads, queue limits, metrics, a logger. */
export interface InferenceSettings {
  /** CPU threads per model. */
  threads: number;
  maxQueue: number;
  timeoutMs: number;
  metrics: JobMetrics;
  logger: Logger;
}

/**
 * What every model instance has: its deployment, the names clients call it by, its blob, whether
 * it is loaded, since when, its jobs.
 */
export interface ModelInstance {
  directiveId: string;
  /** Names a client may use besides the instance id: the artifact name, the manifest's model id. */
  names: string[];
  /** `sha256:<hex>` of the model file: peers route a name only to instances of the same file. */
  blobHash: string;
  state: "loading" | "loaded";
  startedAt: string;
  queue: JobQueue;
  /** What happened to the instance (`GET /v1/instances/{id}/logs`), as for a process. */
  logs: LogRing;
}

/**
 * The model instances of one inference adapter, by instance id. Each is registered with its
 * job queue (one job at a time) while it loads; on removal its queue is closed, its model
 * released and its job metrics dropped.
 */
export class ModelInstances<T extends ModelInstance> {
  readonly #settings: InferenceSettings;
  readonly #release: (instance: T) => Promise<void>;
  readonly #instances = new Map<string, T>();

  constructor(settings: InferenceSettings, release: (instance: T) => Promise<void>) {
    this.#settings = settings;
    this.#release = release;
  }

  /**
   * Registers `instanceId` (of `directive`) as loading with `fields`, then runs `load` on it and marks it loaded;
   * what `load` says of the result (the provider, the context) goes into the instance's log.
   * When `load` fails, the instance is removed again (releasing what it got) and the error
   * rethrown.
   */
  async load(
    instanceId: string,
    directive: DeploymentDirective,
    fields: Omit<T, keyof ModelInstance>,
    load: (instance: T) => Promise<string>,
  ): Promise<T> {
    const { maxQueue, timeoutMs, metrics } = this.#settings;
    const directiveId = directive.directive_id;
    const names = [directive.artifact.name, directive.manifest?.model_id];
    const instance = {
      directiveId,
      names: [...new Set(names.filter((n): n is string => !!n))],
      blobHash: directive.artifact.blob_hash,
      state: "loading",
      startedAt: new Date().toISOString(),
      queue: new JobQueue({ instanceId, maxQueue, timeoutMs, concurrency: 1, metrics }),
      logs: new LogRing(LOG_LINES),
      ...fields,
    } as T;
    this.#instances.set(instanceId, instance);
    const started = performance.now();
    instance.logs.push("stdout", `loading the model of ${directiveId}`);
    try {
      const said = await load(instance);
      instance.state = "loaded";
      instance.logs.push(
        "stdout",
        `loaded in ${Math.round(performance.now() - started)} ms: ${said}`,
      );
      metrics.started(instanceId);
      return instance;
    } catch (err) {
      this.#instances.delete(instanceId);
      instance.queue.close("the model failed to load");
      await this.#release(instance);
      throw err;
    }
  }

  /**
   * Runs an activation's `load` of `instanceId`, which cannot be stopped halfway: an abort of
   * `signal` before it rejects at once; one during it removes the loaded instance again, then
   * rejects. Either way with the signal's reason.
   */
  async activation<R>(instanceId: string, signal: AbortSignal, load: () => Promise<R>): Promise<R> {
    signal.throwIfAborted();
    const result = await load();
    if (signal.aborted) {
      await this.remove(instanceId);
      throw signal.reason;
    }
    return result;
  }

  /** The last `count` lines of an instance's log; undefined when there is no such instance. */
  logs(instanceId: string, count?: number): LogLine[] | undefined {
    return this.#instances.get(instanceId)?.logs.tail(count);
  }

  /** The instance, if there is one. */
  get(instanceId: string): T | undefined {
    return this.#instances.get(instanceId);
  }

  /** The instance called `nameOrId` (its id or one of its names), with its id. */
  find(nameOrId: string): [string, T] | undefined {
    const byId = this.#instances.get(nameOrId);
    if (byId) return [nameOrId, byId];
    return this.entries().find(([, m]) => m.names.includes(nameOrId));
  }

  /** Every instance with its id. */
  entries(): [string, T][] {
    return [...this.#instances.entries()];
  }

  /** Removes an instance: its queued jobs are refused, its model released. */
  async remove(instanceId: string): Promise<void> {
    const instance = this.#instances.get(instanceId);
    if (!instance) return;
    this.#instances.delete(instanceId);
    instance.queue.close(`instance ${instanceId} was deactivated`);
    await this.#release(instance);
    this.#settings.metrics.forget(instanceId);
  }

  /** Removes every instance. */
  async removeAll(): Promise<void> {
    await Promise.all([...this.#instances.keys()].map((id) => this.remove(id)));
  }

  /** The instances as `/v1/instances` shows them: the common fields, then `details`. */
  views(adapter: ArtifactKind, details: (instance: T) => Record<string, unknown>): InstanceView[] {
    return this.entries().map(([id, instance]) => ({
      instance_id: id,
      directive_id: instance.directiveId,
      adapter,
      state: instance.state,
      provider: null,
      started_at: instance.startedAt,
      names: instance.names,
      blob_hash: instance.blobHash,
      ...details(instance),
      threads: this.#settings.threads,
      jobs: {
        queued: instance.queue.depth,
        running: instance.queue.running,
        capacity: instance.queue.capacity,
        per_second: instance.queue.jobsPerSecond,
      },
    }));
  }

  /**
   * The agent's share for each loaded instance: the memory `bytes` says its model holds (its
   * CPU is the agent's own; see WorkloadUsage).
   */
  usage(bytes: (instance: T) => number | undefined): Map<string, WorkloadUsage> {
    const usage = new Map<string, WorkloadUsage>();
    for (const [id, instance] of this.entries()) {
      const memory = instance.state === "loaded" ? bytes(instance) : undefined;
      if (memory !== undefined) {
        usage.set(id, { memory_bytes: memory, usage_source: "agent_share" });
      }
    }
    return usage;
  }
}
