import type { Registry } from "prom-client";
import type { Config } from "../config/schema.ts";
import type { StaticHardware } from "../system/hardware.ts";
import type { Logger } from "../system/logger.ts";
import type { WorkloadUser } from "../system/workload_user.ts";
import type { ArtifactKind, InstanceFailed, RuntimeAdapter } from "./adapter.ts";
import { ConfigPackageAdapter } from "./config_package.ts";
import { ContainerAdapter } from "./container.ts";
import { GgufModelAdapter } from "./gguf_model.ts";
import { createJobMetrics } from "./job_metrics.ts";
import { NativeBinaryAdapter } from "./native_binary.ts";
import { OnnxModelAdapter } from "./onnx_model.ts";
import { WasmModuleAdapter } from "./wasm_module.ts";
import { LoamAgentAdapter, type SelfUpdateHost } from "./loam_agent.ts";

/** What the runtime adapters are built from. */
export interface AdapterSources {
  config: Config;
  instancesDir: string;
  /**
   * This agent's peer id: the container adapter labels and names its containers with it, so
   * agents sharing a host's container store leave each other's containers alone.
   */
  peerId: string;
  hardware: StaticHardware;
  /** Where the job and inference metrics register. */
  registry: Registry;
  logger: Logger;
  /** The account native workloads run as (agent is root), if any. */
  workloadUser?: WorkloadUser;
  /** Called when a supervised instance breaks for good. */
  onFailed: InstanceFailed;
  /** What the agent's own update (`loam_agent`) needs of it. */
  selfUpdate: SelfUpdateHost;
}

/** How often container states are checked. */
const CONTAINER_CHECK_MS = 5000;

/**
 * One runtime adapter per artifact type, configured from the agent's config; the GGUF adapter is
 * also returned by name for the OpenAI routes, which address a model by its name.
 */
export function createAdapters(s: AdapterSources) {
  const { config, instancesDir, onFailed } = s;
  const runtimeLog = s.logger.child({ component: "runtime" });
  const inference = {
    threads: config.inference.threads || s.hardware.cpu.physical_cores,
    maxQueue: config.jobs.max_queue,
    timeoutMs: config.jobs.timeout_seconds * 1000,
    metrics: createJobMetrics(s.registry),
    logger: s.logger.child({ component: "inference" }),
  };
  const onnx = new OnnxModelAdapter(inference);
  const gguf = new GgufModelAdapter({
    ...inference,
    contextLength: config.inference.context_length,
    gpuLayers: config.inference.gpu_layers,
    hasGpu: s.hardware.gpus.length > 0,
  });
  const containers = new ContainerAdapter(
    {
      agentId: s.peerId,
      publishAddress: config.containers.publish_address,
      globalArgs: {
        podman: config.containers.podman_args,
        docker: config.containers.docker_args,
        containerd: config.containers.nerdctl_args,
      },
      stopGraceSeconds: config.containers.stop_grace_seconds,
      checkIntervalMs: CONTAINER_CHECK_MS,
    },
    runtimeLog,
    onFailed,
  );
  const wasm = new WasmModuleAdapter(
    instancesDir,
    {
      maxSeconds: config.wasm.max_seconds,
      memoryMb: config.wasm.memory_mb,
      allowAbsolutePaths: config.wasm.allow_absolute_paths,
    },
    runtimeLog,
    onFailed,
  );
  const adapters = new Map<ArtifactKind, RuntimeAdapter>([
    ["config_package", new ConfigPackageAdapter(instancesDir)],
    ["native_binary", new NativeBinaryAdapter(instancesDir, runtimeLog, onFailed, s.workloadUser)],
    ["onnx_model", onnx],
    ["gguf_model", gguf],
    ["container", containers],
    ["wasm_module", wasm],
    ["loam_agent", new LoamAgentAdapter(s.selfUpdate)],
  ]);
  return { adapters, gguf };
}
