/**
 * @module
 * Runtime adapters: one per artifact type (ONNX, GGUF, container, WASM, native program, config
 * package), each turning a verified blob into an instance behind this one interface, which the
 * deployment engine, the API and the compliance suite (tests/fixtures/adapter_compliance.ts) use.
 */

import type { DeploymentDirective } from "../protocol/directive.ts";
import type { LogLine } from "./log_ring.ts";

/** Artifact types (the `artifact_type.type` values) a runtime adapter can activate. */
export type ArtifactKind = DeploymentDirective["artifact"]["artifact_type"]["type"];

/** A running (or finished) workload made from an artifact. */
export interface Instance {
  instance_id: string;
  /** What runs it, e.g. "cpu" for ONNX, "podman" for a container. */
  provider?: string;
}

/**
 * An instance record as `/v1/instances` shows it: DESIGN.md's fields, plus what the adapter
 * adds (a process's pid and restarts, a model's inputs and outputs, ...).
 */
export interface InstanceView {
  instance_id: string;
  directive_id: string;
  adapter: ArtifactKind;
  /** e.g. `running`, `restarting`, `loading`, `loaded`. */
  state: string;
  provider: string | null;
  started_at: string | null;
  exit_code?: number;
  [detail: string]: unknown;
}

/**
 * An inference request on its way to an instance: the request as it arrived (its body, content
 * type and Accept say what is asked and how to answer) and who sent it (jobs are queued fairly
 * per client). Transport-neutral: the local API passes its HTTP request as it is.
 */
export interface InferCall {
  request: Request;
  /** The caller's name (its token's), for fair queueing. */
  client: string;
  /** Largest request body taken (`jobs.max_input_bytes`). */
  maxInputBytes: number;
}

/**
 * What one workload uses now, and who measured it: `ps` for a process of its own, the container
 * runtime's stats (its cgroup: every process in it), or `agent_share` for a model the agent holds
 * in its own process, whose memory is what its weights and context take (its CPU shows as the
 * agent's, and its busy time as the sum of `loam_inference_latency_seconds`).
 */
export interface WorkloadUsage {
  /** CPU time so far, in seconds; absent where the source does not count it. */
  cpu_seconds?: number;
  /** Memory in use now. */
  memory_bytes: number;
  usage_source: "ps" | "podman" | "docker" | "nerdctl" | "agent_share";
}

/**
 * Turns a verified blob into a running instance and back. One file per adapter under
 * src/runtimes/; the deployment engine only uses this interface.
 */
export interface RuntimeAdapter {
  kind: ArtifactKind;
  /**
   * Activates the verified blob at `blobPath` for `directive`; rejects with a clear reason.
   * When `signal` aborts (the deployment timed out or was cancelled), the adapter stops and
   * removes whatever it had started for this activation before it rejects with the signal's
   * reason: the engine frees the deployment's concurrency slot only once this has settled.
   */
  activate(
    directive: DeploymentDirective,
    blobPath: string,
    signal: AbortSignal,
  ): Promise<Instance>;
  /**
   * After an agent restart: makes an instance that was active run again (a process is
   * started anew; files on disk need nothing).
   */
  resume(directive: DeploymentDirective, instanceId: string, blobPath: string): Promise<void>;
  /** Stops and removes an instance, undoing what it changed (a config package's files). */
  deactivate(instanceId: string): Promise<void>;
  /**
   * Retires an instance that a newer deployment replaced: stops it, but leaves what the newer
   * one now owns (a config package's target) alone. Without it, a replaced instance is
   * deactivated.
   */
  retire?(instanceId: string): Promise<void>;
  /**
   * Answers an inference request for one of its instances, in the form that adapter's models
   * take. Present only on adapters whose instances take inference requests, so callers need not
   * know which kinds those are. Undefined when this adapter runs no such instance: asking each
   * adapter is cheaper than listing them all on every real-time call.
   *
   * @throws HttpError 503 (loading), 400 (bad input), 429 (queue full, with Retry-After), 504
   * (time limit).
   */
  infer?(instanceId: string, call: InferCall): Promise<Response> | undefined;
  /** The instances this adapter runs now. */
  list(): InstanceView[];
  /**
   * What each of its instances uses, by instance id, where the adapter measures it itself;
   * without it, instances with a `pid` are measured with `ps`.
   */
  usage?(): Promise<Map<string, WorkloadUsage>>;
  /** The last output lines of an instance; undefined when it has none here. */
  logs?(
    instanceId: string,
    count?: number,
  ): LogLine[] | undefined | Promise<LogLine[] | undefined>;
  /** At start, before resuming: removes what it left running for deployments no longer active. */
  reconcile?(activeInstanceIds: string[]): Promise<void>;
  /**
   * Stops everything at agent shutdown, leaving it to be resumed at the next start. With
   * `handOver` (a self-update restarts the agent), what the adapter can adopt at its next start
   * is left running.
   */
  stopAll?(how: { handOver: boolean }): Promise<void>;
}

/** Called by an adapter when an instance it supervises breaks for good (e.g. crash loop). */
export type InstanceFailed = (instanceId: string, reason: string) => void;

/**
 * Thrown by an activation that ended by going back to what ran before (a new loam version that
 * did not come up): the deployment ends `rolled_back` with this message, not `failed`.
 */
export class ActivationRolledBack extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ActivationRolledBack";
  }
}
