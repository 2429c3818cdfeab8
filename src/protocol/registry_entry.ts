/**
 * What the registry holds: the AI marketplace reference's `AIModel` and `AIAgent`, with its
 * validation (ids, versions, sizes, hashes), plus an optional Peat ModelManifest that says what a
 * model needs and where its file is. The owner and the times are the registry's to set.
 * @module
 */
import { z } from "zod";
import { ModelManifestSchema } from "./model_manifest.ts";

/** An entry id: the reference's model_id / agent_id, kept to what fits a URL path and a file. */
export const ENTRY_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
/** A semantic version, as the reference's `version` ("0.1.0"). */
const VERSION = /^\d{1,9}\.\d{1,9}\.\d{1,9}(?:[-+][0-9A-Za-z.-]{1,64})?$/;

/** The reference's enums, each with its `Other(String)`: any other short name is kept as given. */
const named = (known: readonly string[]) =>
  z.string().min(1).max(64).describe(`one of ${known.join(", ")}, or another name`);

/** Model types of the reference. */
export const MODEL_TYPES = [
  "LLM",
  "Embedding",
  "Multimodal",
  "AudioProcessing",
  "ImageGeneration",
] as const;

const tags = z.array(z.string().min(1).max(64)).max(32).default([]);
const text = (max: number) => z.string().max(max).default("");
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

const ResourceRequirementsSchema = z.strictObject({
  min_vcpus: z.number().int().min(0).max(255).default(1),
  recommended_vcpus: z.number().int().min(0).max(255).default(2),
  min_memory_mb: count.default(1024),
  recommended_memory_mb: count.default(4096),
  min_disk_gb: count.default(10),
  recommended_disk_gb: count.default(20),
  requires_gpu: z.boolean().default(false),
  min_vram_gb: count.optional(),
  cuda_cores: count.optional(),
  tensor_cores: count.optional(),
});

/** The fields of an `AIModel` a publisher gives (the registry adds owner and times). */
export const AIModelSchema = z.strictObject({
  model_id: z.string().regex(ENTRY_ID, "1-128 letters, digits, '.', '_', ':' or '-'"),
  name: z.string().min(1).max(256),
  version: z.string().regex(VERSION, "a version such as 1.2.0"),
  description: text(4096),
  license: z.string().max(64).default("MIT"),
  model_type: named(MODEL_TYPES).default("LLM"),
  framework: named(["PyTorch", "TensorFlow", "ONNX", "JAX", "CoreML"]).default("PyTorch"),
  parameters: count.default(0),
  quantization: named(["FP32", "FP16", "BF16", "INT8", "INT4", "GPTQ", "GGUF", "AWQ"]).optional(),
  context_length: z.number().int().min(1).max(10_000_000).optional(),
  input_tokens_per_second: count.optional(),
  output_tokens_per_second: count.optional(),
  tags,
  formfile_template: text(16_384),
  resource_requirements: ResourceRequirementsSchema.prefault({}),
  capabilities: tags,
  /** Peat's ModelManifest: sha256, size, where to get it, what hardware it needs. */
  manifest: ModelManifestSchema.optional(),
});

/** The fields of an `AIAgent` a publisher gives (the registry adds owner and times). */
export const AIAgentSchema = z.strictObject({
  agent_id: z.string().regex(ENTRY_ID, "1-128 letters, digits, '.', '_', ':' or '-'"),
  name: z.string().min(1).max(256),
  version: z.string().regex(VERSION, "a version such as 1.2.0"),
  description: text(4096),
  license: z.string().max(64).default("MIT"),
  agent_type: named(["Chatbot", "Assistant", "DataAnalyst", "CodeGenerator", "ContentCreator"])
    .default("Assistant"),
  framework: named(["LangChain", "AutoGPT", "CrewAI", "LlamaIndex", "BabyAGI", "CustomJS"])
    .default("LangChain"),
  compatible_model_types: z.array(named(MODEL_TYPES)).max(16).default(["LLM"]),
  preferred_models: z.array(z.string().regex(ENTRY_ID)).max(32).default([]),
  tags,
  formfile_template: text(16_384),
  resource_requirements: ResourceRequirementsSchema.omit({
    requires_gpu: true,
    min_vram_gb: true,
    cuda_cores: true,
    tensor_cores: true,
  }).prefault({}),
  capabilities: tags,
  tools: tags,
});

/** A model as published. */
export type AIModel = z.infer<typeof AIModelSchema>;
/** An agent as published. */
export type AIAgent = z.infer<typeof AIAgentSchema>;

/** The two kinds of entry, as their route segment names them. */
export type EntryKind = "model" | "agent";

/** The schema of each kind's published fields. */
export const ENTRY_SCHEMAS = { model: AIModelSchema, agent: AIAgentSchema } as const;

/** The id field of each kind. */
export const ID_FIELD = { model: "model_id", agent: "agent_id" } as const;

/**
 * One register of the replicated registry, as its owner signs it (envelope kind
 * `registry_entry`): the entry under `kind`/`id`, or a tombstone (`deleted`, no `entry`), with a
 * revision only the owner raises. Merging keeps, per id, the valid document with the highest
 * revision: a state-based CRDT whose every state carries its owner's signature.
 */
export const RegistryDocumentSchema = z.strictObject({
  kind: z.enum(["model", "agent"]),
  id: z.string().regex(ENTRY_ID),
  /** The publishing node's peer id: only its signature makes a document of this entry. */
  owner_id: z.string().min(1).max(128),
  revision: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  created_at: z.iso.datetime({ offset: true }),
  updated_at: z.iso.datetime({ offset: true }),
  deleted: z.boolean().default(false),
  entry: z.union([AIModelSchema, AIAgentSchema]).optional(),
}).refine((d) => d.deleted === (d.entry === undefined), {
  message: "a document holds an entry, or is a tombstone (deleted) without one",
}).refine(
  (d) =>
    d.entry === undefined || (ID_FIELD[d.kind] in d.entry &&
      (d.entry as Record<string, unknown>)[ID_FIELD[d.kind]] === d.id),
  { message: "the entry's id field must be the document's kind and id" },
);

/** A registry document as signed. */
export type RegistryDocument = z.infer<typeof RegistryDocumentSchema>;

/**
 * Whether `signer` may publish `doc`: its owner always; a moderator (a trusted issuer) only a
 * tombstone. The gossip validator and the registry's merge both hold documents to this.
 */
export function mayPublish(
  doc: RegistryDocument,
  signer: string,
  moderators: readonly string[],
): boolean {
  return signer === doc.owner_id || (doc.deleted && moderators.includes(signer));
}
