import assert from "node:assert/strict";
import { testRouter } from "../../tests/fixtures/test_router.ts";
import { healthRoutes } from "./routes/health.ts";
import { instanceRoutes } from "./routes/instances.ts";
import { tokenRoutes } from "./routes/tokens.ts";
import { consoleRoutes } from "./routes/console.ts";
import { ConsoleCodes } from "./console_codes.ts";
import type { Route } from "./router.ts";
import { HttpError, jsonResponse } from "../system/http_error.ts";

/** The error body every failing route returns. */
async function errorOf(response: Response): Promise<{ code: string; message: string }> {
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
  const body = await response.json();
  assert.deepEqual(Object.keys(body), ["error"]);
  assert.deepEqual(Object.keys(body.error).sort(), ["code", "message"]);
  return body.error;
}

const failing: Route = {
  method: "GET",
  path: "/v1/broken",
  scope: "status:read",
  handler: () => {
    throw new Error("secret detail");
  },
};

function router() {
  return testRouter((tokens) => [
    ...healthRoutes({ isReady: () => false }),
    ...instanceRoutes({
      instances: () => [],
      instanceLogs: () => Promise.resolve(undefined),
      closing: new AbortController().signal,
      usage: () => Promise.resolve(new Map()),
    }),
    ...tokenRoutes({ tokens, maxBodyBytes: 1024 }),
    failing,
  ]);
}

Deno.test("router: a missing or unknown token is 401 with a Bearer challenge", async () => {
  await using api = await router();
  for (const token of [undefined, "not-a-token"]) {
    const response = await api.request("/v1/instances", { token });
    assert.equal(response.status, 401);
    assert.equal(response.headers.get("www-authenticate"), 'Bearer realm="loam"');
    assert.equal((await errorOf(response)).code, "unauthorized");
  }
});

Deno.test("router: a known token without the route's scope is 403 naming the scope", async () => {
  await using api = await router();
  const reader = await api.token(["metrics:read"]);
  const response = await api.request("/v1/instances", { token: reader });
  assert.equal(response.status, 403);
  const error = await errorOf(response);
  assert.equal(error.code, "forbidden");
  assert.match(error.message, /lacks scope status:read/);
  assert.equal((await api.request("/v1/tokens", { token: reader })).status, 403);
});

Deno.test("router: an unknown path is 404, a known path with another method 405 with Allow", async () => {
  await using api = await router();
  const admin = await api.token(["*"]);
  const missing = await api.request("/v1/nothing", { token: admin });
  assert.equal(missing.status, 404);
  assert.equal((await errorOf(missing)).code, "not_found");
  const wrong = await api.request("/v1/tokens", { method: "PUT", token: admin });
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get("allow"), "GET, HEAD, POST");
  assert.equal((await errorOf(wrong)).code, "method_not_allowed");
  const instance = await api.request("/v1/instances/nope", { token: admin });
  assert.equal(instance.status, 404);
  assert.match((await errorOf(instance)).message, /no instance nope/);
});

Deno.test("router: a :param takes one non-empty segment, percent-decoded; other path syntax is refused", async () => {
  const echo: Route = {
    method: "GET",
    path: "/v1/echo/:name/tail",
    scope: null,
    handler: ({ params }) => jsonResponse(params),
  };
  await using api = await testRouter(() => [echo]);
  const decoded = await api.request("/v1/echo/a%3Ab/tail");
  assert.equal(decoded.status, 200);
  assert.deepEqual(await decoded.json(), { name: "a:b" });
  for (const path of ["/v1/echo//tail", "/v1/echo/a/tail/", "/v1/echo/a/b/tail", "/v1/echo/a"]) {
    const response = await api.request(path);
    assert.equal(response.status, 404, path);
    await response.body?.cancel();
  }
  const bad = await api.request("/v1/echo/%E0%A4%A/tail");
  assert.equal(bad.status, 400);
  assert.match((await errorOf(bad)).message, /path parameter name "%E0%A4%A"/);
  for (const path of ["/v1/files/*", "/v1/a/:id(\\d+)", "v1/relative"]) {
    await assert.rejects(testRouter(() => [{ ...echo, path }]), /literal segments and :name/);
  }
});

Deno.test("router: public routes need no token; a failing handler is a 500 that hides its error", async () => {
  await using api = await router();
  assert.equal((await api.request("/livez")).status, 200);
  const ready = await api.request("/readyz");
  assert.equal(ready.status, 503);
  assert.equal((await errorOf(ready)).code, "not_ready");
  const broken = await api.request("/v1/broken", { token: await api.token(["status:read"]) });
  assert.equal(broken.status, 500);
  const error = await errorOf(broken);
  assert.equal(error.code, "internal");
  assert.doesNotMatch(error.message, /secret detail/);
});

Deno.test("router: every response carries x-request-id (the client's when it sent a plain one) and Server-Timing", async () => {
  await using api = await router();
  const own = await api.request("/livez", { headers: { "x-request-id": "abc-123" } });
  assert.equal(own.headers.get("x-request-id"), "abc-123");
  assert.match(own.headers.get("server-timing") ?? "", /^total;dur=\d+\.\d{3}$/);
  await own.body?.cancel();
  const odd = await api.request("/livez", { headers: { "x-request-id": "a b\u00e9" } });
  assert.match(odd.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  await odd.body?.cancel();
  const error = await api.request("/nowhere");
  assert.match(error.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  assert.match(error.headers.get("server-timing") ?? "", /^total;dur=/);
  await error.body?.cancel();
});

Deno.test("router: HEAD answers a GET route with its status and headers and no body", async () => {
  await using api = await router();
  const head = await api.request("/livez", { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.match(head.headers.get("content-type") ?? "", /^application\/json/);
  assert.equal(head.body, null);
  const denied = await api.request("/v1/instances", { method: "HEAD" });
  assert.equal(denied.status, 401);
  assert.equal(denied.body, null);
});

Deno.test("router: an etag route answers 304 to If-None-Match with its current ETag", async () => {
  let version = 1;
  await using api = await testRouter(() => [{
    method: "GET",
    path: "/v1/thing",
    scope: null,
    etag: true,
    handler: () => jsonResponse({ version }),
  }]);
  const first = await api.request("/v1/thing");
  const etag = first.headers.get("etag")!;
  assert.match(etag, /^W\/"[A-Za-z0-9_-]+"$/);
  assert.deepEqual(await first.json(), { version: 1 });
  const again = await api.request("/v1/thing", { headers: { "if-none-match": etag } });
  assert.equal(again.status, 304);
  assert.equal(again.body, null);
  assert.equal(again.headers.get("etag"), etag);
  version = 2;
  const changed = await api.request("/v1/thing", { headers: { "if-none-match": etag } });
  assert.equal(changed.status, 200);
  assert.notEqual(changed.headers.get("etag"), etag);
  assert.deepEqual(await changed.json(), { version: 2 });
});

Deno.test("router: OpenAI routes answer errors in OpenAI's shape, naming the parameter", async () => {
  await using api = await testRouter(() => [{
    method: "POST",
    path: "/v1/openai",
    scope: ["infer:run", "status:read"],
    errors: "openai",
    handler: () => {
      throw new HttpError(400, "invalid_request", "n: only 1 is supported", {}, "n");
    },
  }]);
  const reader = await api.token(["status:read"]);
  const bad = await api.request("/v1/openai", { method: "POST", token: reader });
  assert.equal(bad.status, 400);
  assert.deepEqual(await bad.json(), {
    error: {
      message: "n: only 1 is supported",
      type: "invalid_request_error",
      param: "n",
      code: "invalid_request",
    },
  });
  const anonymous = await api.request("/v1/openai", { method: "POST" });
  assert.equal(anonymous.status, 401);
  assert.equal((await anonymous.json()).error.type, "authentication_error");
  const other = await api.request("/v1/openai", {
    method: "POST",
    token: await api.token(["metrics:read"]),
  });
  assert.equal(other.status, 403);
  assert.match((await other.json()).error.message, /lacks scope infer:run or status:read/);
});

Deno.test("router: the console's page answers at / and its assets under /console/, without a token", async () => {
  await using api = await testRouter((tokens) =>
    consoleRoutes({ tokens, consoleCodes: new ConsoleCodes(), maxBodyBytes: 1024 })
  );
  const page = await api.request("/");
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type")!, /^text\/html/);
  assert.match(await page.text(), /<script type="module" src="\/console\/app.js">/);
  const script = await api.request("/console/app.js");
  assert.match(script.headers.get("content-type")!, /^text\/javascript/);
  await script.body?.cancel();
  assert.equal((await api.request("/console/secret.txt")).status, 404);
  assert.equal((await api.request("/console/__proto__")).status, 404);
  // a code is the admin's to make
  const reader = await api.token(["status:read"]);
  const refused = await api.request("/v1/console/codes", {
    method: "POST",
    token: reader,
    body: "{}",
  });
  assert.equal(refused.status, 403);
  await refused.body?.cancel();
});
