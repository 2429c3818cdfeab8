/**
 * `loam deploy --model <id>[@version]`: the directive built from a registry entry, found through
 * the local agent's API (or `--api URL --token T`): its manifest says which file, how large, its
 * SHA-256 and where to get it, and rides along in the directive for the nodes to check.
 * @module
 */
import type { LoadedConfig } from "../config/load.ts";
import { type AgentEndpoint, findAgent, getJson } from "./agent_client.ts";
import type { ModelManifest } from "../protocol/model_manifest.ts";
import { UserError } from "../system/errors.ts";

/** The artifact type each manifest format deploys as. */
const TYPE_OF_FORMAT: Record<string, string> = { gguf: "gguf_model", onnx: "onnx_model" };

/** The registry entry's fields a directive needs. */
interface ModelEntry {
  model_id: string;
  version: string;
  manifest?: ModelManifest;
}

/**
 * The directive body (scope left to the caller) for the registry's model `spec`
 * (`id` or `id@version`: the version must be the entry's).
 * @throws UserError naming what is missing: the entry, the version, the manifest's fields
 */
export async function directiveFromRegistry(
  spec: string,
  loaded: LoadedConfig,
  api: { url?: string; token?: string },
): Promise<Record<string, unknown>> {
  const at = spec.lastIndexOf("@");
  const [id, version] = at > 0 ? [spec.slice(0, at), spec.slice(at + 1)] : [spec, undefined];
  const endpoint: AgentEndpoint = api.url
    ? { baseUrl: api.url.replace(/\/+$/, ""), token: api.token ?? "" }
    : await findAgent(loaded, api.token);
  const entry = await getJson(
    endpoint,
    `/v1/registry/models/${encodeURIComponent(id)}`,
  ) as ModelEntry;
  if (version !== undefined && entry.version !== version) {
    throw new UserError(
      `deploy --model ${spec}: the registry has ${id} ${entry.version}, not ${version}`,
    );
  }
  const m = entry.manifest;
  const hash = m?.sha256?.replace(/^sha256:/, "");
  if (!m || !hash || m.size_bytes === undefined || !m.download_url) {
    throw new UserError(
      `deploy --model ${spec}: the entry's manifest must give sha256, size_bytes and ` +
        "download_url to build a directive from",
    );
  }
  const type = TYPE_OF_FORMAT[m.format.toLowerCase()];
  if (!type) {
    throw new UserError(
      `deploy --model ${spec}: manifest format "${m.format}" is not one loam deploys (GGUF, ONNX)`,
    );
  }
  return {
    artifact: {
      blob_hash: `sha256:${hash}`,
      size_bytes: m.size_bytes,
      urls: [m.download_url],
      name: entry.model_id,
      version: entry.version,
      artifact_type: { type },
    },
    manifest: m,
  };
}
