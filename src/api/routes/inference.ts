import type { Route } from "../router.ts";
import { HttpError } from "../../system/http_error.ts";
import type { InferCall, InstanceView } from "../../runtimes/adapter.ts";

/** What the inference route needs from the agent. */
export interface InferenceDeps {
  /** Instances of every adapter. */
  instances(): InstanceView[];
  /**
   * Hands the request to the adapter running the instance; undefined when none runs it or its
   * adapter takes no inference requests.
   */
  infer(instanceId: string, call: InferCall): Promise<Response> | undefined;
  /** Limit for inference request bodies (`jobs.max_input_bytes`). */
  maxInputBytes: number;
}

/**
 * `POST /v1/instances/{id}/infer`: whatever the instance's adapter takes (tensors for ONNX, a
 * prompt for GGUF), answered by that adapter; 404 for no such instance, 400 for one that takes
 * no inference requests.
 */
export function inferenceRoutes(deps: InferenceDeps): Route[] {
  return [{
    method: "POST",
    path: "/v1/instances/:id/infer",
    scope: "infer:run",
    handler: ({ req, params, token }) => {
      const call = {
        request: req,
        client: token?.name ?? "anonymous",
        maxInputBytes: deps.maxInputBytes,
      };
      const answer = deps.infer(params.id!, call);
      if (answer) return answer;
      const instance = deps.instances().find((i) => i.instance_id === params.id);
      if (!instance) throw new HttpError(404, "not_found", `no instance ${params.id}`);
      throw new HttpError(
        400,
        "not_inferable",
        `instance ${params.id} is a ${instance.adapter}, which takes no inference requests`,
      );
    },
  }];
}
