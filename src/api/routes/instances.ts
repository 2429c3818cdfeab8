import type { Route } from "../router.ts";
import { HttpError, jsonResponse } from "../../system/http_error.ts";
import type { InstanceView } from "../../runtimes/adapter.ts";
import type { LogLine } from "../../runtimes/log_ring.ts";

/** What the instance routes need from the agent. */
export interface InstancesDeps {
  /** Instances of every adapter. */
  instances(): InstanceView[];
  /** The last output lines of an instance; undefined when there is no such instance. */
  instanceLogs(id: string, lines?: number): Promise<LogLine[] | undefined>;
}

/** `GET /v1/instances`, `/v1/instances/{id}` and `/v1/instances/{id}/logs?lines=N`. */
export function instanceRoutes(deps: InstancesDeps): Route[] {
  return [
    {
      method: "GET",
      path: "/v1/instances",
      scope: "status:read",
      etag: true,
      handler: () => jsonResponse({ instances: deps.instances() }),
    },
    {
      method: "GET",
      path: "/v1/instances/:id",
      scope: "status:read",
      etag: true,
      handler: ({ params }) => {
        const instance = deps.instances().find((i) => i.instance_id === params.id);
        if (!instance) throw new HttpError(404, "not_found", `no instance ${params.id}`);
        return jsonResponse(instance);
      },
    },
    {
      method: "GET",
      path: "/v1/instances/:id/logs",
      scope: "status:read",
      handler: async ({ params, url }) => {
        const lines = Number(url.searchParams.get("lines") ?? "100");
        if (!Number.isInteger(lines) || lines < 1) {
          throw new HttpError(400, "invalid_request", "lines: expected a positive integer");
        }
        const logs = await deps.instanceLogs(params.id!, lines);
        if (!logs) throw new HttpError(404, "not_found", `no instance ${params.id}`);
        return jsonResponse({ instance_id: params.id, lines: logs });
      },
    },
  ];
}
