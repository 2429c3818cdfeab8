import assert from "node:assert/strict";
import { testRouter } from "../../tests/fixtures/test_router.ts";
import { healthRoutes } from "./routes/health.ts";
import { instanceRoutes } from "./routes/instances.ts";
import { tokenRoutes } from "./routes/tokens.ts";
import type { Route } from "./router.ts";

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
    ...instanceRoutes({ instances: () => [], instanceLogs: () => Promise.resolve(undefined) }),
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
  assert.equal(wrong.headers.get("allow"), "GET, POST");
  assert.equal((await errorOf(wrong)).code, "method_not_allowed");
  const instance = await api.request("/v1/instances/nope", { token: admin });
  assert.equal(instance.status, 404);
  assert.match((await errorOf(instance)).message, /no instance nope/);
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
