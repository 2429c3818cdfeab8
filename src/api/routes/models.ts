import type { Route } from "../router.ts";
import { jsonResponse } from "../../system/http_error.ts";
import type { ModelView } from "../../deploy/models.ts";

/** What the model list needs from the agent. */
export interface ModelsDeps {
  /** ONNX and GGUF models among the deployments, with their Peat model status. */
  models(): ModelView[];
}

/**
 * `GET /v1/models`: loam's model list (`models`, Peat's ModelStatus) and, in `object`/`data`,
 * OpenAI's list of the loaded ones, whose ids an OpenAI client can pass as `model`.
 */
export function modelRoutes(deps: ModelsDeps): Route[] {
  return [{
    method: "GET",
    path: "/v1/models",
    scope: "status:read",
    handler: () => {
      const models = deps.models();
      const data = models.filter((m) => m.status === "Loaded" && m.instance_id).map((m) => ({
        id: m.instance_id,
        object: "model",
        created: 0,
        owned_by: "loam",
      }));
      return jsonResponse({ object: "list", data, models });
    },
  }];
}
