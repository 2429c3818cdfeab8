import { z } from "zod";
import { HardwareRequirementsSchema } from "./hardware_requirements.ts";
import { ModelManifestSchema } from "./model_manifest.ts";
import { capabilityProblem } from "./wasi_capabilities.ts";
import { OrderIdSchema } from "./order_id.ts";

const sha256Ref = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected "sha256:<64 lowercase hex>"');
const httpUrl = z.url({ protocol: /^https?$/, error: "expected an http or https URL" });

/** Who a directive targets (Peat scopes with named fields). */
const DeploymentScopeSchema = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("broadcast") }),
  z.strictObject({ type: z.literal("formation"), formation_id: z.string().min(1) }),
  z.strictObject({ type: z.literal("nodes"), node_ids: z.array(z.string().min(1)).min(1) }),
  z.strictObject({
    type: z.literal("capability"),
    /** The node's CPU architecture (`x86_64`, `aarch64`, or an alias such as `arm64`). */
    arch: z.string().min(1).optional(),
    min_gpu_memory_mb: z.number().int().min(0).optional(),
    min_memory_mb: z.number().int().min(0).optional(),
    min_storage_mb: z.number().int().min(0).optional(),
    required_capabilities: z.array(z.string()).default([]),
    custom: z.record(z.string(), z.string()).default({}),
  }),
]);

/** What kind of artifact, with the settings its runtime adapter needs. */
const ArtifactTypeSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("onnx_model"),
    execution_providers: z.array(z.string()).default([]),
  }),
  z.strictObject({
    type: z.literal("gguf_model"),
    context_length: z.number().int().positive().optional(),
    gpu_layers: z.number().int().min(0).optional(),
  }),
  z.strictObject({
    type: z.literal("container"),
    runtime: z.enum(["docker", "podman", "containerd"]),
    ports: z.array(z.strictObject({
      container_port: z.number().int().min(1).max(65535),
      host_port: z.number().int().min(1).max(65535),
      protocol: z.enum(["tcp", "udp"]).default("tcp"),
    })).default([]),
    env: z.record(z.string(), z.string()).default({}),
  }),
  z.strictObject({
    type: z.literal("native_binary"),
    arch: z.string().min(1),
    args: z.array(z.string()).default([]),
  }),
  z.strictObject({ type: z.literal("config_package"), target_path: z.string().min(1) }),
  z.strictObject({
    /** A loam file for one architecture: the agent replaces itself with it. */
    type: z.literal("loam_agent"),
    version: z.string().regex(/^[A-Za-z0-9._+-]{1,64}$/, "letters, digits, . _ + - (1-64)")
      .refine((v) => v !== "current" && v !== "previous", "names a link of the bin layout"),
    allow_downgrade: z.boolean().default(false),
  }),
  z.strictObject({
    type: z.literal("wasm_module"),
    wasi_capabilities: z.array(z.string()).default([]).superRefine((capabilities, ctx) => {
      const problem = capabilityProblem(capabilities);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    }),
  }),
]);

/** The artifact to deploy: content hash, size, sources and type. */
const ArtifactSpecSchema = z.strictObject({
  blob_hash: sha256Ref,
  size_bytes: z.number().int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  name: z.string().optional(),
  version: z.string().optional(),
  urls: z.array(httpUrl).default([]),
  artifact_type: ArtifactTypeSchema,
  requirements: HardwareRequirementsSchema.optional(),
});

/** How the deployment is carried out. */
const DeploymentOptionsSchema = z.strictObject({
  priority: z.enum(["critical", "high", "normal", "low"]).default("normal"),
  timeout_seconds: z.number().int().positive().default(300),
  replace_existing: z.boolean().default(false),
  rollback_threshold_percent: z.number().int().min(0).max(100).optional(),
  auto_activate: z.boolean().default(true),
});

/** A signed order from the command post to deploy one artifact (Peat DeploymentDirective). */
export const DeploymentDirectiveSchema = z.strictObject({
  directive_id: OrderIdSchema,
  issued_at: z.iso.datetime({ offset: true }),
  expires_at: z.iso.datetime({ offset: true }).optional(),
  issuer_node_id: z.string().min(1),
  issuer_formation_id: z.string().optional(),
  scope: DeploymentScopeSchema,
  artifact: ArtifactSpecSchema,
  capabilities: z.array(z.string()).default([]),
  config: z.unknown().default({}),
  options: DeploymentOptionsSchema.prefault({}),
  /** A Peat ModelManifest describing the model (ONNX or GGUF artifacts). */
  manifest: ModelManifestSchema.optional(),
}).superRefine((d, ctx) => {
  const manifestHash = d.manifest?.sha256?.replace(/^sha256:/, "");
  if (manifestHash && `sha256:${manifestHash}` !== d.artifact.blob_hash) {
    ctx.addIssue({
      code: "custom",
      path: ["manifest", "sha256"],
      message: `does not match artifact.blob_hash ${d.artifact.blob_hash}`,
    });
  }
});

/** A validated deployment directive. */
export type DeploymentDirective = z.infer<typeof DeploymentDirectiveSchema>;
