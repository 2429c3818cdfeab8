import type { Registry } from "prom-client";
import type { Route } from "../router.ts";

/** What the scrape needs from the agent. */
export interface MetricsDeps {
  /** The agent's Prometheus registry. */
  registry: Registry;
}

/** `GET /metrics` in Prometheus text (public when `api.public_metrics`: the router decides). */
export function metricsRoutes(deps: MetricsDeps): Route[] {
  return [{
    method: "GET",
    path: "/metrics",
    scope: "metrics:read",
    handler: async () =>
      new Response(await deps.registry.metrics(), {
        headers: { "content-type": deps.registry.contentType },
      }),
  }];
}
