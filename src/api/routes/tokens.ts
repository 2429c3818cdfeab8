import { z } from "zod";
import type { Route } from "../router.ts";
import { HttpError, jsonResponse } from "../../system/http_error.ts";
import { readValidBody } from "../../system/http_body.ts";
import { SCOPES } from "../scopes.ts";
import type { TokenStore } from "../tokens.ts";
import { UserError } from "../../system/errors.ts";

/** What token management needs from the agent. */
export interface TokensDeps {
  tokens: Pick<TokenStore, "list" | "create" | "revoke">;
  maxBodyBytes: number;
}

const CreateTokenBody = z.strictObject({
  name: z.string(),
  scopes: z.array(z.enum(SCOPES)).min(1),
});

/** `/v1/tokens` (admin scope `*`): list, create (the secret is shown once), revoke by name. */
export function tokenRoutes(deps: TokensDeps): Route[] {
  return [
    {
      method: "GET",
      path: "/v1/tokens",
      scope: "*",
      etag: true,
      handler: async () => jsonResponse({ tokens: await deps.tokens.list() }),
    },
    {
      method: "POST",
      path: "/v1/tokens",
      scope: "*",
      handler: async ({ req }) => {
        const { name, scopes } = await readValidBody(req, deps.maxBodyBytes, CreateTokenBody);
        let token: string;
        try {
          token = await deps.tokens.create(name, scopes);
        } catch (err) {
          if (err instanceof UserError) throw new HttpError(400, "invalid_request", err.message);
          throw err;
        }
        return jsonResponse({ name, scopes, token }, 201);
      },
    },
    {
      method: "DELETE",
      path: "/v1/tokens/:name",
      scope: "*",
      handler: async ({ params }) => {
        try {
          await deps.tokens.revoke(params.name!);
        } catch (err) {
          if (err instanceof UserError) throw new HttpError(404, "not_found", err.message);
          throw err;
        }
        return new Response(null, { status: 204 });
      },
    },
  ];
}
