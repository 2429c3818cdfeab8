/**
 * @module
 * The local HTTP API's router: it matches the route table (routes.ts, one file per feature
 * under routes/), checks each route's scope in this one place (401 without a known token, 403
 * without the scope, 405 with Allow), turns errors into `{"error":{"code","message"}}` and
 * records request metrics. Handlers never authenticate by themselves.
 */

import { errorResponse, HttpError } from "../system/http_error.ts";
import { grants, type Scope } from "./scopes.ts";
import type { TokenRecord, TokenStore } from "./tokens.ts";
import type { ApiMetrics } from "./metrics.ts";
import type { Logger } from "../system/logger.ts";

/** What a route handler receives. */
export interface RouteContext {
  req: Request;
  url: URL;
  /** Named path parameters, e.g. `{ name }` for `/v1/tokens/:name`. */
  params: Record<string, string>;
  /** The authenticated token; undefined on public routes. */
  token?: TokenRecord;
}

/** One API route: method, URLPattern path, the scope it needs (null = public) and a handler. */
export interface Route {
  method: "GET" | "POST" | "DELETE";
  path: string;
  scope: Scope | null;
  handler: (ctx: RouteContext) => Response | Promise<Response>;
}

/** What the router needs to authenticate, measure and log. */
export interface RouterDeps {
  tokens: TokenStore;
  /** When true, `metrics:read` routes need no token. */
  publicMetrics: boolean;
  metrics: ApiMetrics;
  logger: Logger;
}

async function authenticate(req: Request, scope: Scope, deps: RouterDeps): Promise<TokenRecord> {
  const header = req.headers.get("authorization");
  const challenge = { "www-authenticate": 'Bearer realm="loam"' };
  const match = header?.match(/^Bearer\s+(\S+)\s*$/i);
  if (!match) {
    throw new HttpError(
      401,
      "unauthorized",
      "missing bearer token: send 'Authorization: Bearer <token>'",
      challenge,
    );
  }
  const token = await deps.tokens.authenticate(match[1]!);
  if (!token) throw new HttpError(401, "unauthorized", "unknown or revoked token", challenge);
  if (!grants(token.scopes, scope)) {
    throw new HttpError(403, "forbidden", `token "${token.name}" lacks scope ${scope}`);
  }
  return token;
}

/**
 * Percent-decodes path parameters (URLPattern gives them as sent), so `/v1/deployments/a%3Ab`
 * names `a:b`; a malformed escape is the client's mistake (400), not the agent's.
 */
function decodeParams(groups: Record<string, string | undefined>): Record<string, string> {
  const params: Record<string, string> = {};
  for (const [name, raw] of Object.entries(groups)) {
    if (raw === undefined) continue;
    try {
      params[name] = decodeURIComponent(raw);
    } catch {
      throw new HttpError(
        400,
        "invalid_request",
        `path parameter ${name} "${raw}" is not valid percent-encoding`,
      );
    }
  }
  return params;
}

/**
 * Builds the request handler: matches the route table, enforces each route's scope in this one
 * place (401 no/unknown token, 403 missing scope), maps errors to JSON bodies, records metrics.
 */
export function createRouter(
  routes: Route[],
  deps: RouterDeps,
): (req: Request) => Promise<Response> {
  const compiled = routes.map((route) => ({
    route,
    pattern: new URLPattern({ pathname: route.path }),
  }));

  const dispatch = async (req: Request, url: URL): Promise<[Response, string]> => {
    const matching = compiled.filter((c) => c.pattern.test({ pathname: url.pathname }));
    if (matching.length === 0) {
      throw new HttpError(404, "not_found", `no route ${url.pathname}`);
    }
    const hit = matching.find((c) => c.route.method === req.method);
    if (!hit) {
      const allow = matching.map((c) => c.route.method).join(", ");
      throw new HttpError(
        405,
        "method_not_allowed",
        `${req.method} not allowed on ${url.pathname}`,
        {
          allow,
        },
      );
    }
    const { route, pattern } = hit;
    const needed = route.scope === "metrics:read" && deps.publicMetrics ? null : route.scope;
    const token = needed ? await authenticate(req, needed, deps) : undefined;
    const params = decodeParams(pattern.exec({ pathname: url.pathname })?.pathname.groups ?? {});
    return [await route.handler({ req, url, params, token }), route.path];
  };

  return async (req) => {
    const started = performance.now();
    const url = new URL(req.url);
    let response: Response;
    let routeLabel = "unmatched";
    try {
      [response, routeLabel] = await dispatch(req, url);
    } catch (err) {
      if (err instanceof HttpError) {
        response = errorResponse(err);
      } else {
        deps.logger.error("api handler failed", { path: url.pathname, error: err });
        response = errorResponse(new HttpError(500, "internal", "internal error; see agent log"));
      }
    }
    const seconds = (performance.now() - started) / 1000;
    deps.metrics.observeRequest(req.method, routeLabel, response.status, seconds);
    deps.logger.debug("api request", {
      method: req.method,
      path: url.pathname,
      status: response.status,
      ms: Math.round(seconds * 1000),
    });
    return response;
  };
}
