import type { DeploymentRecord } from "./records.ts";
import type { DeploymentState } from "../protocol/status.ts";
import { estimatedVramMb } from "../protocol/model_manifest.ts";
import { type NodeFacts, unmetRequirement } from "./targeting.ts";

/** Peat's ModelStatus. */
export type ModelStatus = "Available" | "Downloading" | "Ready" | "Loaded" | "Failed";

/** One model on this node as `GET /v1/models` shows it. */
export interface ModelView {
  model_id: string;
  name: string | null;
  version: string | null;
  format: "onnx" | "gguf";
  status: ModelStatus;
  directive_id: string;
  instance_id: string | null;
  blob_hash: string;
  size_bytes: number;
  download_progress: number;
  /** Peat's estimate (parameters × quantization) or the manifest's recommended VRAM. */
  estimated_vram_mb: number | null;
  /** Whether this node meets the model's hardware requirements (ModelManifest can_run_on). */
  can_run_on: boolean;
  /** Why not, when it does not. */
  unmet_requirement?: string;
  error?: string;
  features: string[];
}

const STATUS_BY_STATE: Record<DeploymentState, ModelStatus> = {
  pending: "Available",
  downloading: "Downloading",
  ready: "Ready",
  activating: "Ready",
  active: "Loaded",
  failed: "Failed",
  rolled_back: "Ready",
};

/** The models among the deployments (ONNX and GGUF artifacts), newest first. */
export function modelsReport(records: DeploymentRecord[], node: NodeFacts): ModelView[] {
  const models: ModelView[] = [];
  for (const record of records) {
    const { artifact, manifest } = record.directive;
    const type = artifact.artifact_type.type;
    if (type !== "onnx_model" && type !== "gguf_model") continue;
    const unmet = unmetRequirement(record.directive, node);
    models.push({
      model_id: manifest?.model_id ?? artifact.name ?? record.directive_id,
      name: manifest?.name || artifact.name || null,
      version: manifest?.version || artifact.version || null,
      format: type === "onnx_model" ? "onnx" : "gguf",
      status: STATUS_BY_STATE[record.state],
      directive_id: record.directive_id,
      instance_id: record.instance_id ?? null,
      blob_hash: artifact.blob_hash,
      size_bytes: artifact.size_bytes,
      download_progress: record.progress_percent / 100,
      estimated_vram_mb: manifest ? estimatedVramMb(manifest) : null,
      can_run_on: unmet === undefined,
      ...(unmet ? { unmet_requirement: unmet } : {}),
      ...(record.state === "failed" && record.error_message ? { error: record.error_message } : {}),
      features: manifest?.features ?? [],
    });
  }
  return models;
}
