import { z } from "zod";
import type { Route } from "./router.ts";
import { errorResponse, HttpError, jsonResponse } from "./http_error.ts";
import { readJsonBody } from "./body.ts";
import { SCOPES } from "./scopes.ts";
import type { TokenStore } from "./tokens.ts";
import type { ApiMetrics } from "./metrics.ts";
import type { StatusReport } from "./status.ts";
import type { BlobsReport } from "../deploy/references.ts";
import { UserError } from "../system/errors.ts";

/** The state the API reads; it never reaches into other modules' internals. */
export interface ApiState {
  /** True once start-up finished and until shutdown begins. */
  isReady(): boolean;
  status(): StatusReport;
  /** Verified blobs with the deployments that use them, and partial downloads. */
  blobs(): Promise<BlobsReport>;
  tokens: TokenStore;
  metrics: ApiMetrics;
  maxBodyBytes: number;
}

const CreateTokenBody = z.strictObject({
  name: z.string(),
  scopes: z.array(z.enum(SCOPES)).min(1),
});

async function userErrorsAs400<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof UserError) throw new HttpError(400, "invalid_request", err.message);
    throw err;
  }
}

/** The route table: every route with the scope it needs, in one place. */
export function apiRoutes(state: ApiState): Route[] {
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
        state.isReady()
          ? jsonResponse({ status: "ready" })
          : errorResponse(new HttpError(503, "not_ready", "agent is starting or shutting down")),
    },
    {
      method: "GET",
      path: "/v1/status",
      scope: "status:read",
      handler: () => jsonResponse(state.status()),
    },
    {
      method: "GET",
      path: "/v1/blobs",
      scope: "status:read",
      handler: async () => jsonResponse(await state.blobs()),
    },
    {
      method: "GET",
      path: "/metrics",
      scope: "metrics:read",
      handler: async () =>
        new Response(await state.metrics.registry.metrics(), {
          headers: { "content-type": state.metrics.registry.contentType },
        }),
    },
    {
      method: "GET",
      path: "/v1/tokens",
      scope: "*",
      handler: async () => jsonResponse({ tokens: await state.tokens.list() }),
    },
    {
      method: "POST",
      path: "/v1/tokens",
      scope: "*",
      handler: async ({ req }) => {
        const parsed = CreateTokenBody.safeParse(await readJsonBody(req, state.maxBodyBytes));
        if (!parsed.success) {
          const issue = parsed.error.issues[0]!;
          throw new HttpError(
            400,
            "invalid_request",
            `${issue.path.join(".") || "body"}: ${issue.message}`,
          );
        }
        const { name, scopes } = parsed.data;
        const token = await userErrorsAs400(() => state.tokens.create(name, scopes));
        return jsonResponse({ name, scopes, token }, 201);
      },
    },
    {
      method: "DELETE",
      path: "/v1/tokens/:name",
      scope: "*",
      handler: async ({ params }) => {
        const name = params.name!;
        try {
          await state.tokens.revoke(name);
        } catch (err) {
          if (err instanceof UserError) throw new HttpError(404, "not_found", err.message);
          throw err;
        }
        return new Response(null, { status: 204 });
      },
    },
  ];
}
