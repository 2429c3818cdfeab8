import { type AgentProcess, runLoam, startAgent } from "./harness.ts";
import assert from "node:assert/strict";
import { buildTinyGguf } from "../../tasks/gen_tiny_gguf.ts";
import { eventually } from "./mesh_helpers.ts";
import { sha256Hex, startBlobServer } from "../fixtures/blob_server.ts";

/** The deployment record once it reached one of `states` (default: active or failed). */
export async function settledDeployment(
  agent: AgentProcess,
  id: string,
  states = ["active", "failed"],
  timeoutMs?: number,
  // deno-lint-ignore no-explicit-any
): Promise<any> {
  return await eventually(`${id} settled`, async () => {
    const res = await agent.request(`/v1/deployments/${id}`, { token: agent.adminToken() });
    const record = await res.json();
    return states.includes(record.state) ? record : undefined;
  }, timeoutMs);
}

/**
 * POSTs a broadcast directive for `blob` (served at `url`) with `artifactType`; `extra` adds or
 * overrides top-level directive fields (config, manifest, options).
 */
export async function postArtifact(
  agent: AgentProcess,
  id: string,
  blob: Uint8Array,
  url: string,
  artifactType: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Promise<Response> {
  return await agent.request("/v1/deployments", {
    method: "POST",
    token: agent.adminToken(),
    body: JSON.stringify({
      directive_id: id,
      scope: { type: "broadcast" },
      artifact: {
        blob_hash: `sha256:${sha256Hex(blob)}`,
        size_bytes: blob.length,
        urls: [url],
        artifact_type: artifactType,
      },
      ...extra,
    }),
  });
}

/**
 * Deploys the GGUF `model` (served at `url`) as deployment `llm-1`, named `tiny-llama`, with a
 * 256-token context (by default), and waits until it is active: instance `llm-llm-1`.
 */
export async function deployTinyLlm(
  agent: AgentProcess,
  url: string,
  model: Uint8Array,
  { id = "llm-1", name = "tiny-llama", contextLength = 256 } = {},
) {
  const res = await agent.request("/v1/deployments", {
    method: "POST",
    token: agent.adminToken(),
    body: JSON.stringify({
      directive_id: id,
      scope: { type: "broadcast" },
      artifact: {
        blob_hash: `sha256:${sha256Hex(model)}`,
        size_bytes: model.length,
        name,
        urls: [url],
        artifact_type: { type: "gguf_model", context_length: contextLength },
      },
    }),
  });
  if (res.status !== 202) throw new Error(`deployment refused: ${res.status} ${await res.text()}`);
  const record = await settledDeployment(agent, id);
  if (record.state !== "active") {
    throw new Error(`${id} is ${record.state}: ${record.error_message}`);
  }
}

/**
 * A started agent (one inference thread) serving the tiny seed-1 GGUF as `tiny-llama`, with the
 * model's bytes; disposing it stops the agent and the blob server.
 */
export async function tinyLlmAgent(dataDir: string, args: string[] = []) {
  const model = buildTinyGguf(1);
  const http = startBlobServer({ "/tiny.gguf": { body: model } });
  const agent = await startAgent(dataDir, args, { env: { LOAM_INFERENCE_THREADS: "1" } });
  const close = async () => {
    await agent.stop();
    await http[Symbol.asyncDispose]();
  };
  try {
    await deployTinyLlm(agent, http.url("/tiny.gguf"), model);
  } catch (err) {
    await close();
    throw err;
  }
  return {
    agent,
    model,
    /** Deploys the same model again, under another id, name or context length. */
    deploy: (options: Parameters<typeof deployTinyLlm>[3]) =>
      deployTinyLlm(agent, http.url("/tiny.gguf"), model, options),
    [Symbol.asyncDispose]: close,
  };
}

/** An `infer:run` token, the key the README tells OpenAI users to use. */
export async function inferToken(dataDir: string): Promise<string> {
  const made = await runLoam([
    "token",
    "create",
    "--data-dir",
    dataDir,
    "--scopes",
    "infer:run",
    "--name",
    "openai",
  ]);
  assert.equal(made.code, 0, made.stderr);
  return made.stdout.trim();
}
