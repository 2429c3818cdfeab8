import type { Route } from "../router.ts";
import { jsonResponse } from "../../system/http_error.ts";
import type { FleetNode } from "../../mesh/fleet_view.ts";

/** What the fleet route needs from the agent. */
export interface FleetDeps {
  /** Every node heard from; empty until the mesh is up. */
  fleet(): FleetNode[];
}

/**
 * `GET /v1/fleet` (status:read): every node this one has heard from through adverts and
 * statuses, with online / last seen, what it runs, and each deployment's state there.
 */
export function fleetRoutes(deps: FleetDeps): Route[] {
  return [
    {
      method: "GET",
      path: "/v1/fleet",
      scope: "status:read",
      etag: true,
      handler: () => jsonResponse({ nodes: deps.fleet() }),
    },
  ];
}
