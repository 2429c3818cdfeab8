import type { Route } from "../router.ts";
import { HttpError } from "../../system/http_error.ts";
import type { InferCall, InstanceView } from "../../runtimes/adapter.ts";
import { readBodyBytes } from "../../system/http_body.ts";
import { forwardedJob, type JobRouting } from "../job_routing.ts";
import type { LocalModel } from "../../mesh/infer_executor.ts";
import type { TokenRecord } from "../tokens.ts";

/** A loaded model instance found by name. */
export interface NamedModel extends LocalModel {
  instanceId: string;
  adapter: "gguf_model" | "onnx_model";
}

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
  /** The model instance an instance id or name refers to: "loading" while it loads. */
  model(nameOrId: string): NamedModel | "loading" | undefined;
  /** Sends jobs for models not here (or with a full queue here) to peers. */
  routing?: JobRouting;
}

/** The call for an instance: the request as it came, and who sent it. */
function callOf(deps: InferenceDeps, req: Request, token?: TokenRecord): InferCall {
  return { request: req, client: token?.name ?? "anonymous", maxInputBytes: deps.maxInputBytes };
}

/**
 * `POST /v1/instances/{id}/infer`: whatever the instance's adapter takes (tensors for ONNX, a
 * prompt for GGUF), answered by that adapter; 404 for no such instance, 400 for one that takes
 * no inference requests. `POST /v1/models/{name}/infer` takes the same body for a model by name,
 * here or, when it is not here or its queue is full, on a fleet peer that runs it.
 */
export function inferenceRoutes(deps: InferenceDeps): Route[] {
  return [{
    method: "POST",
    path: "/v1/models/:name/infer",
    scope: "infer:run",
    handler: async ({ req, params, token }) => {
      const name = params.name!;
      const local = deps.model(name);
      let request = req;
      if (deps.routing && (local === undefined || (local !== "loading" && local.full))) {
        // only a job that may leave is read here: a local one streams into its adapter as it is
        const body = await readBodyBytes(req, deps.maxInputBytes);
        const path = `/v1/models/${name}/infer`;
        const forwarded = await forwardedJob(deps.routing, local, {
          req,
          path,
          model: name,
          body,
          token,
        });
        if (forwarded) return forwarded;
        request = new Request(req.url, {
          method: "POST",
          headers: req.headers,
          body,
          signal: req.signal,
        });
      } else if (local !== undefined) deps.routing?.ranLocally();
      if (local === undefined) {
        throw new HttpError(
          404,
          "model_not_found",
          `no model instance or name "${name}"${deps.routing ? " here or on a peer" : ""}`,
        );
      }
      const instanceId = local === "loading" ? name : local.instanceId;
      const answer = deps.infer(instanceId, callOf(deps, request, token));
      if (answer) return await answer;
      throw new HttpError(503, "loading", `model ${name} is loading`, { "retry-after": "1" });
    },
  }, {
    method: "POST",
    path: "/v1/instances/:id/infer",
    scope: "infer:run",
    handler: ({ req, params, token }) => {
      const call = callOf(deps, req, token);
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
