import type { Route } from "../router.ts";
import { jsonResponse } from "../../system/http_error.ts";
import type { StatusReport } from "../status.ts";
import type { PeerView } from "../../mesh/peers.ts";

/** What the status routes need from the agent. */
export interface StatusDeps {
  status(): StatusReport;
  /** Connected mesh peers. */
  peers(): PeerView[];
}

/** `GET /v1/status` (with what the calling token may do) and `GET /v1/peers`. */
export function statusRoutes(deps: StatusDeps): Route[] {
  return [
    {
      method: "GET",
      path: "/v1/status",
      scope: "status:read",
      etag: true,
      handler: ({ token }) =>
        jsonResponse({
          ...deps.status(),
          // JSON leaves out an absent expires_at
          token: token
            ? { name: token.name, scopes: token.scopes, expires_at: token.expires_at }
            : null,
        }),
    },
    {
      method: "GET",
      path: "/v1/peers",
      scope: "status:read",
      etag: true,
      handler: () => jsonResponse({ peers: deps.peers() }),
    },
  ];
}
