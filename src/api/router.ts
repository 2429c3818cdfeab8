/**
 * @module
 * The local HTTP API's router: it matches the route table (routes.ts, one file per feature
 * under routes/), checks each route's scope in this one place (401 without a known token, 403
 * without the scope, 405 with Allow), turns errors into `{"error":{"code","message"}}` (OpenAI's
 * shape on the OpenAI routes) and
 * records request metrics. Handlers never authenticate by themselves.
 */

import { errorResponse, HttpError, openAiErrorResponse } from "../system/http_error.ts";
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

/**
 * One API route: method, path (literal segments and `:name` parameters), the scope it needs
 * (null = public; a list = any one of them) and a handler. A GET route answers HEAD too.
 */
export interface Route {
  method: "GET" | "POST" | "PUT" | "DELETE";
  path: string;
  scope: Scope | readonly Scope[] | null;
  handler: (ctx: RouteContext) => Response | Promise<Response>;
  /** `openai`: errors in OpenAI's shape (`message`, `type`, `param`, `code`), for its clients. */
  errors?: "openai";
  /**
   * A weak ETag over the JSON answer, and 304 to an `If-None-Match` that has it, so pollers of
   * status and lists pay a header instead of the body.
   */
  etag?: boolean;
}

/** What the router needs to authenticate, measure and log. */
export interface RouterDeps {
  tokens: TokenStore;
  /** When true, `metrics:read` routes need no token. */
  publicMetrics: boolean;
  metrics: ApiMetrics;
  logger: Logger;
  /**
   * What a request without an Authorization header may do (`api.ollama_scopes` on the Ollama
   * listener, whose clients send no token); absent, such a request is a 401.
   */
  anonymousScopes?: readonly Scope[];
  /**
   * The caller of a request made in this process rather than received: a job a fleet peer sent
   * (the peer signed its offer; no token travels). Asked before any Authorization header.
   */
  caller?: (req: Request) => TokenRecord | undefined;
}

async function authenticate(
  req: Request,
  scopes: readonly Scope[],
  deps: RouterDeps,
): Promise<TokenRecord> {
  const caller = deps.caller?.(req);
  if (caller) {
    if (!scopes.some((scope) => grants(caller.scopes, scope))) {
      throw new HttpError(403, "forbidden", `${caller.name} may not do this`);
    }
    return caller;
  }
  const header = req.headers.get("authorization");
  if (header === null && deps.anonymousScopes) {
    const anonymous = {
      name: "anonymous",
      scopes: [...deps.anonymousScopes],
      sha256: "",
      created_at: "",
    };
    if (!scopes.some((scope) => grants(anonymous.scopes, scope))) {
      throw new HttpError(
        403,
        "forbidden",
        `requests without a token may not do this (needs ${scopes.join(" or ")})`,
      );
    }
    return anonymous;
  }
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
  if (!token) {
    throw new HttpError(401, "unauthorized", "unknown, revoked or expired token", challenge);
  }
  if (!scopes.some((scope) => grants(token.scopes, scope))) {
    throw new HttpError(
      403,
      "forbidden",
      `token "${token.name}" lacks scope ${scopes.join(" or ")}`,
    );
  }
  return token;
}

/** A route path: `/` itself, or `/`-separated literal segments and `:name` parameters. */
const ROUTE_PATH = /^\/$|^(\/([\w.-]+|:\w+))+$/;

/**
 * A route path's segments: the literal text, or the parameter's name after `:`. Only this
 * plain form is taken: matching it by segment costs a few microseconds, where URLPattern cost
 * ~100 µs a request on a busy agent.
 */
function segmentsOf(path: string): { literal?: string; param?: string }[] {
  if (!ROUTE_PATH.test(path)) {
    throw new Error(`route path ${path}: use literal segments and :name parameters only`);
  }
  return path.split("/").map((segment) =>
    segment.startsWith(":") ? { param: segment.slice(1) } : { literal: segment }
  );
}

/** The request path's raw parameters when it fits `segments`; one non-empty segment each. */
function paramsOf(
  segments: { literal?: string; param?: string }[],
  given: string[],
): Record<string, string> | undefined {
  if (segments.length !== given.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const { literal, param } = segments[i]!;
    const raw = given[i]!;
    if (param === undefined ? literal !== raw : raw === "") return undefined;
    if (param !== undefined) params[param] = raw;
  }
  return params;
}

/**
 * Percent-decodes path parameters (they match as sent), so `/v1/deployments/a%3Ab` names
 * `a:b`; a malformed escape is the client's mistake (400), not the agent's.
 */
function decodeParams(raw: Record<string, string>): Record<string, string> {
  const params: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    try {
      params[name] = decodeURIComponent(value);
    } catch {
      throw new HttpError(
        400,
        "invalid_request",
        `path parameter ${name} "${value}" is not valid percent-encoding`,
      );
    }
  }
  return params;
}

/** A client's `x-request-id` is kept when it is short and plain; otherwise one is made. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Weak ETag of a body: the first 16 bytes of its SHA-256, base64url. */
async function etagOf(body: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", body)).slice(0, 16);
  const text = btoa(String.fromCharCode(...digest)).replaceAll("+", "-").replaceAll("/", "_");
  return `W/"${text.replace(/=+$/, "")}"`;
}

/** Whether `If-None-Match` names `etag` (or is `*`), compared weakly as RFC 9110 says. */
function matches(ifNoneMatch: string, etag: string): boolean {
  const bare = (tag: string) => tag.trim().replace(/^W\//, "");
  return ifNoneMatch.split(",").some((tag) => tag.trim() === "*" || bare(tag) === bare(etag));
}

/** The answer with an ETag, or 304 when the client already has this one. */
async function withEtag(req: Request, response: Response): Promise<Response> {
  if (response.status !== 200) return response;
  const body = new Uint8Array(await response.arrayBuffer());
  const etag = await etagOf(body);
  const headers = new Headers(response.headers);
  headers.set("etag", etag);
  const ifNoneMatch = req.headers.get("if-none-match");
  if (ifNoneMatch !== null && matches(ifNoneMatch, etag)) {
    headers.delete("content-type");
    return new Response(null, { status: 304, headers });
  }
  return new Response(body, { status: 200, headers });
}

/**
 * The response as sent: with its request id, the agent's time to the response's headers as
 * `Server-Timing: total` (next to any a handler gave, e.g. `model`), and without a body for
 * HEAD. The response itself is kept where its headers can be set: wrapping its body in a new
 * Response would make Deno stream it through JavaScript, the slow path, on every request.
 */
function finish(req: Request, response: Response, requestId: string, ms: number): Response {
  const timing = `total;dur=${ms.toFixed(3)}`;
  if (req.method !== "HEAD") {
    try {
      response.headers.set("x-request-id", requestId);
      response.headers.append("server-timing", timing);
      return response;
    } catch {
      // immutable headers (a fetched or redirect Response): copied below
    }
  }
  const headers = new Headers(response.headers);
  headers.set("x-request-id", requestId);
  headers.append("server-timing", timing);
  const body = req.method === "HEAD" ? null : response.body;
  if (req.method === "HEAD") void response.body?.cancel();
  return new Response(body, { status: response.status, statusText: response.statusText, headers });
}

/**
 * Builds the request handler: matches the route table, enforces each route's scope in this one
 * place (401 no/unknown token, 403 missing scope), maps errors to JSON bodies, answers HEAD on
 * GET routes, tags every response with `x-request-id` (the client's, when it sent a plain one)
 * and `Server-Timing`, and records metrics under the route's pattern, errors on a known route
 * included.
 */
export function createRouter(
  routes: Route[],
  deps: RouterDeps,
): (req: Request) => Promise<Response> {
  const compiled = routes.map((route) => ({ route, segments: segmentsOf(route.path) }));

  /** The routes for this request's path with their parameters, and the one for its method. */
  const match = (req: Request, url: URL) => {
    const given = url.pathname.split("/");
    const matching = compiled.flatMap((c) => {
      const params = paramsOf(c.segments, given);
      return params ? [{ ...c, params }] : [];
    });
    if (matching.length === 0) {
      throw new HttpError(404, "not_found", `no route ${url.pathname}`);
    }
    const method = req.method === "HEAD" ? "GET" : req.method;
    const hit = matching.find((c) => c.route.method === method);
    const allowed = matching.flatMap((c) =>
      c.route.method === "GET" ? ["GET", "HEAD"] : [c.route.method]
    );
    return { hit, label: (hit ?? matching[0]!).route.path, allow: allowed.join(", ") };
  };

  const dispatch = async (
    req: Request,
    url: URL,
    hit: NonNullable<ReturnType<typeof match>["hit"]>,
  ): Promise<Response> => {
    const { route } = hit;
    const needed = route.scope === "metrics:read" && deps.publicMetrics ? null : route.scope;
    const token = needed === null
      ? undefined
      : await authenticate(req, typeof needed === "string" ? [needed] : needed, deps);

    const params = decodeParams(hit.params);
    const response = await route.handler({ req, url, params, token });
    return route.etag ? await withEtag(req, response) : response;
  };

  return async (req) => {
    const started = performance.now();
    const url = new URL(req.url);
    const given = req.headers.get("x-request-id");
    const requestId = given !== null && REQUEST_ID.test(given) ? given : crypto.randomUUID();
    let response: Response;
    let routeLabel = "unmatched";
    let hit: ReturnType<typeof match>["hit"];
    try {
      const found = match(req, url);
      routeLabel = found.label;
      hit = found.hit;
      if (!hit) {
        throw new HttpError(
          405,
          "method_not_allowed",
          `${req.method} not allowed on ${url.pathname}`,
          {
            allow: found.allow,
          },
        );
      }
      response = await dispatch(req, url, hit);
    } catch (err) {
      let httpError: HttpError;
      if (err instanceof HttpError) {
        httpError = err;
      } else {
        deps.logger.error("api handler failed", {
          path: url.pathname,
          request_id: requestId,
          error: err,
        });
        httpError = new HttpError(500, "internal", "internal error; see agent log");
      }
      response = hit?.route.errors === "openai"
        ? openAiErrorResponse(httpError)
        : errorResponse(httpError);
    }
    const seconds = (performance.now() - started) / 1000;
    response = finish(req, response, requestId, seconds * 1000);
    deps.metrics.observeRequest(req.method, routeLabel, response.status, seconds);
    deps.logger.debug("api request", {
      method: req.method,
      path: url.pathname,
      status: response.status,
      ms: seconds * 1000,
    });
    return response;
  };
}
