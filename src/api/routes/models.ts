import type { Route } from "../router.ts";
import { HttpError, jsonResponse } from "../../system/http_error.ts";
import type { ModelView } from "../../deploy/models.ts";
import type { InstanceView } from "../../runtimes/adapter.ts";
import type { PeerModel } from "../../mesh/peers.ts";

/** What the model list needs from the agent. */
export interface ModelsDeps {
  /** ONNX and GGUF models among the deployments, with their Peat model status. */
  models(): ModelView[];
  /** Instances of every adapter (for when each model was loaded). */
  instances(): InstanceView[];
  /** Models connected fleet peers serve: an OpenAI client here can use them as well. */
  meshModels(): PeerModel[];
}

/** OpenAI's model object for a loaded model; `created` is when it was loaded (Unix seconds). */
function openAiModel(model: ModelView, instances: InstanceView[]) {
  const startedAt = instances.find((i) => i.instance_id === model.instance_id)?.started_at;
  return {
    id: model.instance_id!,
    object: "model",
    created: startedAt ? Math.floor(Date.parse(startedAt) / 1000) : 0,
    owned_by: "loam",
    format: model.format,
    /** `local`: runs here; `mesh`: runs on the peers in `nodes`, jobs are sent there. */
    location: "local",
  };
}

/** The models fleet peers serve and this node does not, in OpenAI's shape, by id. */
function meshModelList(held: PeerModel[], localIds: Set<string>, all: boolean) {
  const byId = new Map<string, { nodes: { node_id: string; peer_id: string }[]; format: string }>();
  for (const { node_id, peer_id, model } of held) {
    if (localIds.has(model.instance_id) || (!all && model.adapter !== "gguf_model")) continue;
    const entry = byId.get(model.instance_id) ??
      { nodes: [], format: model.adapter === "gguf_model" ? "gguf" : "onnx" };
    if (!entry.nodes.some((n) => n.peer_id === peer_id)) entry.nodes.push({ node_id, peer_id });
    byId.set(model.instance_id, entry);
  }
  return [...byId].map(([id, { nodes, format }]) => ({
    id,
    object: "model",
    created: 0,
    owned_by: "loam",
    format,
    location: "mesh",
    nodes: nodes.sort((x, y) => x.node_id.localeCompare(y.node_id)),
  }));
}

const loaded = (m: ModelView) => m.status === "Loaded" && m.instance_id !== null;

/**
 * `GET /v1/models`: loam's model list (`models`, Peat's ModelStatus) and, in `object`/`data`,
 * OpenAI's list of the loaded LLMs, here and on fleet peers (`location`), whose ids an OpenAI
 * client can pass as `model`. ONNX models
 * join `data` only with `?all=1`: OpenAI clients take every listed model for a chat model.
 * `GET /v1/models/{id}` is OpenAI's retrieve. Either scope reads them: `infer:run` is the key
 * OpenAI clients are given.
 */
export function modelRoutes(deps: ModelsDeps): Route[] {
  return [
    {
      method: "GET",
      path: "/v1/models",
      scope: ["infer:run", "status:read"],
      errors: "openai",
      etag: true,
      handler: ({ url }) => {
        for (const key of url.searchParams.keys()) {
          if (key !== "all") {
            throw new HttpError(400, "invalid_request", `unknown query parameter ${key}`, {}, key);
          }
        }
        const all = ["1", "true"].includes(url.searchParams.get("all") ?? "");
        const models = deps.models();
        const instances = deps.instances();
        const local = models.filter((m) => loaded(m) && (all || m.format === "gguf"))
          .map((m) => openAiModel(m, instances));
        const localIds = new Set(local.map((m) => m.id));
        const data = [...local, ...meshModelList(deps.meshModels(), localIds, all)];
        return jsonResponse({ object: "list", data, models });
      },
    },
    {
      method: "GET",
      path: "/v1/models/:id",
      scope: ["infer:run", "status:read"],
      errors: "openai",
      handler: ({ params }) => {
        const model = deps.models().find((m) => loaded(m) && m.instance_id === params.id);
        const held = meshModelList(deps.meshModels(), new Set(), true).find((m) =>
          m.id === params.id
        );
        if (!model && held) return jsonResponse(held);
        if (!model) {
          throw new HttpError(404, "model_not_found", `no loaded model ${params.id}`, {}, "model");
        }
        return jsonResponse(openAiModel(model, deps.instances()));
      },
    },
  ];
}
