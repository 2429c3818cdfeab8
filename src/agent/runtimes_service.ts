import type { Registry } from "prom-client";
import type { Config } from "../config/schema.ts";
import { probeStaticHardware, type StaticHardware } from "../system/hardware.ts";
import { detectContainerRuntimes } from "../system/container_runtimes.ts";
import type { WorkloadUser } from "../system/workload_user.ts";
import type { DataPaths } from "../system/paths.ts";
import type { Logger } from "../system/logger.ts";
import { loadableProviders } from "../runtimes/onnx_providers.ts";
import { createAdapters } from "../runtimes/adapters.ts";
import type {
  ArtifactKind,
  InferCall,
  InstanceFailed,
  InstanceView,
  RuntimeAdapter,
  WorkloadUsage,
} from "../runtimes/adapter.ts";
import type { LogLine } from "../runtimes/log_ring.ts";
import { processUsage } from "../system/process_usage.ts";
import type { GgufModelAdapter, LlmInference } from "../runtimes/gguf_model.ts";
import type { Service } from "./service.ts";
import type { AdvertisedModel } from "../protocol/advert.ts";
import type { NamedModel } from "../api/routes/inference.ts";
import type { SelfUpdateHost } from "../runtimes/loam_agent.ts";

/** The fields model adapters add to an instance's view (model_instances.ts). */
interface ModelView extends InstanceView {
  adapter: "gguf_model" | "onnx_model";
  names: string[];
  blob_hash: string;
  tokens_per_second?: number | null;
  jobs: { queued: number; running: number; capacity: number; per_second: number | null };
}

/** How long one measurement of the workloads' usage answers for. */
const USAGE_CACHE_MS = 1000;

/** What this host can run, probed once at start: it goes into adverts and targeting. */
export interface HostRuntimes {
  hardware: StaticHardware;
  /** Container CLIs found on PATH. */
  containerRuntimes: string[];
  /** ONNX execution providers that load here. */
  executionProviders: string[];
  /** Artifact types this build can activate. */
  adapterKinds: ArtifactKind[];
}

/** What the runtimes are built from; `peerId` and `activeInstances` are read at start. */
export interface RuntimesOptions {
  config: Config;
  paths: DataPaths;
  peerId: () => string;
  registry: Registry;
  workloadUser?: WorkloadUser;
  /** The instance ids the deployment records say are active (the rest is swept at start). */
  activeInstances: () => string[];
  /** A supervised instance broke for good. */
  onFailed: InstanceFailed;
  /** What the agent's own update needs of it. */
  selfUpdate: SelfUpdateHost;
  logger: Logger;
}

/**
 * The runtime adapters and what the host offers them. At start the adapters sweep away what an
 * earlier agent left running for deployments no longer active, and the container runtimes and
 * execution providers are probed; both run in the background, so the API answers `/livez`
 * meanwhile, and {@link whenReconciled} / {@link whenDetected} say when they are done.
 */
export class RuntimesService implements Service {
  readonly name = "runtimes";
  readonly #options: RuntimesOptions;
  #hardware?: StaticHardware;
  #adapters = new Map<ArtifactKind, RuntimeAdapter>();
  #handingOver = false;
  #reconciled: Promise<unknown> = Promise.resolve();
  #detected?: Promise<HostRuntimes>;
  #gguf?: GgufModelAdapter;
  #usage?: Promise<Map<string, WorkloadUsage>>;

  constructor(options: RuntimesOptions) {
    this.#options = options;
  }

  async start(): Promise<void> {
    const o = this.#options;
    const hardware = await probeStaticHardware();
    this.#hardware = hardware;
    const { adapters, gguf } = createAdapters({
      config: o.config,
      peerId: o.peerId(),
      instancesDir: o.paths.instances,
      hardware,
      registry: o.registry,
      logger: o.logger,
      workloadUser: o.workloadUser,
      onFailed: o.onFailed,
      // a hand-over leaves the programs running for the next version to adopt
      selfUpdate: {
        ...o.selfUpdate,
        restart: (next) => {
          this.#handingOver = true;
          o.selfUpdate.restart(next);
        },
      },
    });
    this.#adapters = adapters;
    this.#gguf = gguf;
    const active = o.activeInstances();
    this.#reconciled = Promise.all(
      [...this.#adapters.values()].map((adapter) =>
        adapter.reconcile?.(active).catch((err) =>
          o.logger.warn("reconcile failed", { adapter: adapter.kind, error: err })
        )
      ),
    );
    this.#detected = (async () => ({
      hardware,
      containerRuntimes: await detectContainerRuntimes(),
      executionProviders: await loadableProviders(hardware.gpus.some((g) => g.kind === "nvidia")),
      adapterKinds: [...this.#adapters.keys()],
    }))();
  }

  /**
   * Stops every workload, leaving it to be resumed at the next start; after a self-update asked
   * for a restart, what can be adopted is left running instead.
   */
  async stop(): Promise<void> {
    await this.#reconciled;
    const how = { handOver: this.#handingOver };
    await Promise.all([...this.#adapters.values()].map((adapter) => adapter.stopAll?.(how)));
  }

  /** Resolves once what an earlier agent left running has been swept (before any resume). */
  async whenReconciled(): Promise<void> {
    await this.#reconciled;
  }

  /** What this host can run, once probed. */
  whenDetected(): Promise<HostRuntimes> {
    if (!this.#detected) throw new Error("the runtimes are probed at start");
    return this.#detected;
  }

  /** The hardware probed at start (CPU, GPUs, RAM). */
  get hardware(): StaticHardware {
    if (!this.#hardware) throw new Error("the hardware is probed at start");
    return this.#hardware;
  }

  /** The adapter for each artifact type, for the deployment engine. */
  get adapters(): ReadonlyMap<ArtifactKind, RuntimeAdapter> {
    return this.#adapters;
  }

  /** Every instance this node runs now, of every adapter. */
  instances(): InstanceView[] {
    return [...this.#adapters.values()].flatMap((adapter) => adapter.list());
  }

  /**
   * CPU and memory of each instance, by instance id: from the adapters that measure their own
   * (containers, models), and one `ps` for the other instances with a process (native programs,
   * WASM modules). Kept for a second, so pollers and scrapes do not each run them.
   */
  usage(): Promise<Map<string, WorkloadUsage>> {
    this.#usage ??= this.#measure().finally(() =>
      setTimeout(() => this.#usage = undefined, USAGE_CACHE_MS)
    );
    return this.#usage;
  }

  async #measure(): Promise<Map<string, WorkloadUsage>> {
    const usage = new Map<string, WorkloadUsage>();
    const byPid = new Map<number, string>();
    for (const adapter of this.#adapters.values()) {
      if (adapter.usage) {
        for (const [id, u] of await adapter.usage().catch(() => new Map())) usage.set(id, u);
      } else {
        for (const view of adapter.list()) {
          if (typeof view.pid === "number") byPid.set(view.pid, view.instance_id);
        }
      }
    }
    for (const [pid, u] of await processUsage([...byPid.keys()])) {
      usage.set(byPid.get(pid)!, { ...u, usage_source: "ps" });
    }
    return usage;
  }

  /** The last output lines of an instance; undefined when no adapter has it. */
  async logs(instanceId: string, lines?: number): Promise<LogLine[] | undefined> {
    for (const adapter of this.#adapters.values()) {
      const logs = await adapter.logs?.(instanceId, lines);
      if (logs) return logs;
    }
    return undefined;
  }

  /**
   * Hands an inference request to the adapter running `instanceId`; undefined when that adapter
   * (or none) takes inference requests.
   */
  infer(instanceId: string, call: InferCall): Promise<Response> | undefined {
    for (const adapter of this.#adapters.values()) {
      const answer = adapter.infer?.(instanceId, call);
      if (answer) return answer;
    }
    return undefined;
  }

  /** The model instances (GGUF and ONNX), loading or loaded. */
  #modelViews(): ModelView[] {
    return (["gguf_model", "onnx_model"] as const).flatMap((kind) =>
      (this.#adapters.get(kind)?.list() ?? []) as ModelView[]
    );
  }

  /**
   * The model instance (GGUF or ONNX) an instance id or name refers to: "loading" while it
   * loads, undefined when there is none.
   */
  model(nameOrId: string): NamedModel | "loading" | undefined {
    const view = this.#modelViews().find((v) =>
      v.instance_id === nameOrId || v.names.includes(nameOrId)
    );
    if (!view) return undefined;
    if (view.state !== "loaded") return "loading";
    return {
      instanceId: view.instance_id,
      adapter: view.adapter,
      blobHash: view.blob_hash,
      full: view.jobs.queued + view.jobs.running >= view.jobs.capacity,
    };
  }

  /** The loaded model instances as adverts list them for peers that route jobs. */
  advertisedModels(): AdvertisedModel[] {
    return this.#modelViews().filter((v) => v.state === "loaded").map((v) => ({
      instance_id: v.instance_id,
      adapter: v.adapter,
      names: v.names,
      blob_hash: v.blob_hash,
      queued: v.jobs.queued,
      running: v.jobs.running,
      capacity: v.jobs.capacity,
      tokens_per_second: v.tokens_per_second ?? null,
      jobs_per_second: v.jobs.per_second,
    }));
  }

  /** The LLM an instance id or model name refers to: "loading" while it loads, else undefined. */
  llm(nameOrId: string): LlmInference | "loading" | undefined {
    return this.#gguf?.model(nameOrId);
  }
}
