import type { Route } from "../router.ts";
import { errorResponse, HttpError, jsonResponse } from "../../system/http_error.ts";

/** What the probes need from the agent. */
export interface HealthDeps {
  /** True once start-up finished and until shutdown begins. */
  isReady(): boolean;
}

/**
 * `GET /livez` (the process answers) and `GET /readyz` (503 while starting or draining): no
 * token, so systemd, Kubernetes-style probes and load balancers can ask.
 */
export function healthRoutes(deps: HealthDeps): Route[] {
  return [
    {
      method: "GET",
      path: "/livez",
      scope: null,
      handler: () => jsonResponse({ status: "ok" }),
    },
    {
      method: "GET",
      path: "/readyz",
      scope: null,
      handler: () =>
        deps.isReady()
          ? jsonResponse({ status: "ready" })
          : errorResponse(new HttpError(503, "not_ready", "agent is starting or shutting down")),
    },
  ];
}
