import type { DeploymentDirective } from "../protocol/directive.ts";

/** Artifact types (the `artifact_type.type` values) a runtime adapter can activate. */
export type ArtifactKind = DeploymentDirective["artifact"]["artifact_type"]["type"];

/** A running (or finished) workload made from an artifact. */
export interface Instance {
  instance_id: string;
  /** What runs it, e.g. "cpu" for ONNX, "podman" for a container. */
  provider?: string;
}

/**
 * Turns a verified blob into a running instance and back. One file per adapter under
 * src/runtimes/; the deployment engine only uses this interface.
 */
export interface RuntimeAdapter {
  kind: ArtifactKind;
  /** Activates the verified blob at `blobPath` for `directive`; rejects with a clear reason. */
  activate(directive: DeploymentDirective, blobPath: string): Promise<Instance>;
  /**
   * After an agent restart: makes an instance that was active run again (a process is
   * started anew; files on disk need nothing).
   */
  resume(directive: DeploymentDirective, instanceId: string, blobPath: string): Promise<void>;
  /** Stops and removes an instance, undoing what it changed (a config package's files). */
  deactivate(instanceId: string): Promise<void>;
  /**
   * Retires an instance that a newer deployment replaced: stops it, but leaves what the newer
   * one now owns (a config package's target) alone.
   */
  retire(instanceId: string): Promise<void>;
}

/** Called by an adapter when an instance it supervises breaks for good (e.g. crash loop). */
export type InstanceFailed = (instanceId: string, reason: string) => void;
