import { z } from "zod";
import type { Route } from "../router.ts";
import { HttpError, jsonResponse } from "../../system/http_error.ts";
import { readValidBody } from "../../system/http_body.ts";
import { SCOPES } from "../scopes.ts";
import type { TokenStore } from "../tokens.ts";
import type { ConsoleCodes } from "../console_codes.ts";
import page from "../../console/index.html" with { type: "text" };
import script from "../../console/app.js" with { type: "text" };
import style from "../../console/app.css" with { type: "text" };

/** How long a console login lasts before the page must be opened with a new code. */
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;

/** What the console needs from the agent. */
export interface ConsoleDeps {
  tokens: Pick<TokenStore, "createSession">;
  consoleCodes: ConsoleCodes;
  maxBodyBytes: number;
}

/**
 * The page's own rules: scripts and styles only from this agent (no inline script, no CDN),
 * requests only to this agent, never framed; the referrer is never sent (the login URL holds a
 * code).
 */
const PAGE_HEADERS = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; " +
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; " +
    "frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cache-control": "no-cache",
};

/** The embedded assets under `/console/`, by file name. */
const ASSETS: Record<string, { body: string; type: string }> = {
  "app.js": { body: script, type: "text/javascript; charset=utf-8" },
  "app.css": { body: style, type: "text/css; charset=utf-8" },
};

const CodeBody = z.strictObject({ scopes: z.array(z.enum(SCOPES)).min(1).optional() });
const SessionBody = z.strictObject({ code: z.string().min(1).max(256) });

/**
 * The local web console: the page at `/` and its assets under `/console/` (public: they hold no
 * data; every figure comes from the API with the page's token), one-time login codes for
 * `loam console` (admin), and the exchange of a code for a session token.
 */
export function consoleRoutes(deps: ConsoleDeps): Route[] {
  return [
    {
      method: "GET",
      path: "/",
      scope: null,
      etag: true,
      handler: () =>
        new Response(page, {
          headers: { "content-type": "text/html; charset=utf-8", ...PAGE_HEADERS },
        }),
    },
    {
      method: "GET",
      path: "/console/:file",
      scope: null,
      etag: true,
      handler: ({ params }) => {
        const asset = Object.hasOwn(ASSETS, params.file!) ? ASSETS[params.file!] : undefined;
        if (!asset) throw new HttpError(404, "not_found", `no console file ${params.file}`);
        return new Response(asset.body, {
          headers: { "content-type": asset.type, ...PAGE_HEADERS },
        });
      },
    },
    {
      method: "POST",
      path: "/v1/console/codes",
      scope: "*",
      handler: async ({ req }) => {
        const { scopes } = await readValidBody(req, deps.maxBodyBytes, CodeBody);
        return jsonResponse(deps.consoleCodes.issue(scopes ?? ["*"]), 201);
      },
    },
    {
      method: "POST",
      path: "/v1/console/session",
      scope: null,
      handler: async ({ req }) => {
        const { code } = await readValidBody(req, deps.maxBodyBytes, SessionBody);
        const scopes = deps.consoleCodes.redeem(code);
        if (!scopes) {
          throw new HttpError(
            401,
            "unauthorized",
            "this login code is unknown, used or expired: run 'loam console' again",
          );
        }
        return jsonResponse(await deps.tokens.createSession(scopes, SESSION_TTL_MS), 201);
      },
    },
  ];
}
