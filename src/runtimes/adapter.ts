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
  /** Stops and removes an instance. */
  deactivate(instanceId: string): Promise<void>;
}
