import type { Route } from "../router.ts";
import { HttpError, jsonResponse } from "../../system/http_error.ts";
import { readJsonBody, validBody } from "../../system/http_body.ts";
import { type DeploymentDirective, DeploymentDirectiveSchema } from "../../protocol/directive.ts";
import type { CancelResult, SubmitResult } from "../../deploy/engine.ts";
import type { DeploymentRecord } from "../../deploy/records.ts";

/** What the deployment routes need from the agent. */
export interface DeploymentsDeps {
  /** Hands a directive from the local API to the deployment engine. */
  submitDirective(directive: DeploymentDirective): Promise<SubmitResult>;
  /** Deployment records, newest first. */
  deployments(): DeploymentRecord[];
  /** Activates a deployment waiting in `ready`; undefined when there is none with that id. */
  activateDeployment(id: string): Promise<DeploymentRecord | undefined>;
  /**
   * DELETE of a deployment in any state: stops it (rolled_back) or, when it is final, removes
   * its record; undefined when there is none with that id.
   */
  cancelDeployment(id: string): Promise<CancelResult | undefined>;
  maxBodyBytes: number;
}

/**
 * `/v1/deployments`: submit a directive (unsigned: the token is the authority; `issued_at` and
 * `issuer_node_id` are filled in), list, show, activate one waiting in `ready`, cancel or remove.
 */
export function deploymentRoutes(deps: DeploymentsDeps): Route[] {
  return [
    {
      method: "POST",
      path: "/v1/deployments",
      scope: "deploy:write",
      handler: async ({ req }) => {
        const body = await readJsonBody(req, deps.maxBodyBytes);
        if (body === null || typeof body !== "object" || Array.isArray(body)) {
          throw new HttpError(400, "invalid_request", "body: expected a directive object");
        }
        const local = { issued_at: new Date().toISOString(), issuer_node_id: "local-api", ...body };
        const directive = validBody(DeploymentDirectiveSchema, local);
        const result = await deps.submitDirective(directive);
        switch (result.outcome) {
          case "accepted":
            return jsonResponse(result.record, 202);
          case "not_targeted":
            return jsonResponse({
              directive_id: directive.directive_id,
              targeted: false,
              reason: result.reason,
            });
          case "replay":
            throw new HttpError(409, "replay", result.reason);
          case "expired":
            throw new HttpError(400, "expired", result.reason);
        }
      },
    },
    {
      method: "GET",
      path: "/v1/deployments",
      scope: "status:read",
      etag: true,
      handler: () => jsonResponse({ deployments: deps.deployments() }),
    },
    {
      method: "GET",
      path: "/v1/deployments/:id",
      scope: "status:read",
      etag: true,
      handler: ({ params }) => {
        const record = deps.deployments().find((d) => d.directive_id === params.id);
        if (!record) throw new HttpError(404, "not_found", `no deployment ${params.id}`);
        return jsonResponse(record);
      },
    },
    {
      method: "POST",
      path: "/v1/deployments/:id/activate",
      scope: "deploy:write",
      handler: async ({ params }) => {
        let record: DeploymentRecord | undefined;
        try {
          record = await deps.activateDeployment(params.id!);
        } catch (err) {
          throw new HttpError(409, "not_ready", (err as Error).message);
        }
        if (!record) throw new HttpError(404, "not_found", `no deployment ${params.id}`);
        return jsonResponse(record);
      },
    },
    {
      method: "DELETE",
      path: "/v1/deployments/:id",
      scope: "deploy:write",
      handler: async ({ params }) => {
        const result = await deps.cancelDeployment(params.id!);
        if (!result) throw new HttpError(404, "not_found", `no deployment ${params.id}`);
        if (result.outcome === "removed") return jsonResponse(result);
        return jsonResponse({ outcome: result.outcome, ...result.record });
      },
    },
  ];
}
