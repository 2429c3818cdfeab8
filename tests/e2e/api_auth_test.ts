import assert from "node:assert/strict";
import { runLoam, startAgent, tempDir } from "./harness.ts";

/** Every route that exists, with the scope DESIGN.md gives it and a request that succeeds. */
const ROUTES: {
  method: string;
  path: string;
  /** The scope it needs; a list: any one of them. */
  scope: string | string[] | null;
  body?: unknown;
  ok: number;
}[] = [
  { method: "GET", path: "/livez", scope: null, ok: 200 },
  { method: "GET", path: "/readyz", scope: null, ok: 200 },
  { method: "GET", path: "/v1/status", scope: "status:read", ok: 200 },
  { method: "GET", path: "/v1/peers", scope: "status:read", ok: 200 },
  { method: "GET", path: "/v1/blobs", scope: "status:read", ok: 200 },
  { method: "GET", path: "/v1/deployments", scope: "status:read", ok: 200 },
  { method: "GET", path: "/v1/deployments/none", scope: "status:read", ok: 404 },
  { method: "GET", path: "/v1/instances", scope: "status:read", ok: 200 },
  { method: "GET", path: "/v1/instances/none/logs", scope: "status:read", ok: 404 },
  { method: "GET", path: "/v1/models", scope: ["infer:run", "status:read"], ok: 200 },
  { method: "GET", path: "/v1/models/none", scope: ["infer:run", "status:read"], ok: 404 },
  { method: "POST", path: "/v1/deployments", scope: "deploy:write", body: {}, ok: 400 },
  { method: "POST", path: "/v1/blobs", scope: "deploy:write", body: {}, ok: 400 },
  { method: "DELETE", path: "/v1/deployments/none", scope: "deploy:write", ok: 404 },
  { method: "POST", path: "/v1/instances/none/infer", scope: "infer:run", body: {}, ok: 404 },
  {
    method: "POST",
    path: "/v1/chat/completions",
    scope: "infer:run",
    body: { model: "none", messages: [{ role: "user", content: "hi" }] },
    ok: 404,
  },
  { method: "GET", path: "/metrics", scope: "metrics:read", ok: 200 },
  { method: "GET", path: "/v1/tokens", scope: "*", ok: 200 },
  {
    method: "POST",
    path: "/v1/tokens",
    scope: "*",
    body: { name: "made", scopes: ["infer:run"] },
    ok: 201,
  },
  { method: "DELETE", path: "/v1/tokens/made", scope: "*", ok: 204 },
];

const SCOPES = ["status:read", "deploy:write", "infer:run", "metrics:read"];

/** `loam token create` on `dataDir`, with `extra` flags; the whole result. */
function tokenCreate(dataDir: string, scopes: string, extra: string[] = []) {
  return runLoam(["token", "create", "--data-dir", dataDir, "--scopes", scopes, ...extra]);
}

async function createToken(dataDir: string, name: string, scopes: string): Promise<string> {
  const res = await tokenCreate(dataDir, scopes, ["--name", name]);
  assert.equal(res.code, 0, res.stderr);
  return res.stdout.trim();
}

Deno.test("401/403/200 on every route for no, unknown, wrong-scope and right-scope tokens", async () => {
  await using dir = await tempDir();
  const agent = await startAgent(dir.path);
  try {
    // tokens made by the CLI while the agent runs apply at once
    const tokens: Record<string, string> = { "*": agent.adminToken() };
    for (const scope of SCOPES) {
      tokens[scope] = await createToken(dir.path, scope.replace(":", "-"), scope);
    }

    for (const route of ROUTES) {
      const call = (token?: string) =>
        agent.request(route.path, {
          method: route.method,
          token,
          body: route.body === undefined ? undefined : JSON.stringify(route.body),
        });
      const label = `${route.method} ${route.path}`;
      if (route.scope === null) {
        const res = await call();
        assert.equal(res.status, route.ok, label);
        assert.ok(res.headers.get("x-request-id"), `${label} has x-request-id`);
        await res.body?.cancel();
        continue;
      }
      const scopes = typeof route.scope === "string" ? [route.scope] : route.scope;
      for (const token of [undefined, "loam_unknown", "garbage"]) {
        const res = await call(token);
        assert.equal(res.status, 401, `${label} with ${token ?? "no token"}`);
        assert.equal(res.headers.get("www-authenticate"), 'Bearer realm="loam"');
        assert.ok(res.headers.get("x-request-id"), `${label} has x-request-id`);
        const body = await res.json();
        assert.equal(body.error.code, "unauthorized");
        assert.equal(typeof body.error.message, "string");
      }
      for (const scope of SCOPES.filter((s) => !scopes.includes(s))) {
        const res = await call(tokens[scope]);
        assert.equal(res.status, 403, `${label} with ${scope}`);
        const body = await res.json();
        assert.equal(body.error.code, "forbidden");
        assert.match(
          body.error.message,
          new RegExp(`lacks scope ${scopes.join(" or ").replace("*", "\\*")}`),
        );
      }
      for (const scope of scopes) {
        const res = await call(tokens[scope]);
        assert.equal(res.status, route.ok, `${label} with ${scope}`);
        await res.body?.cancel();
      }
      if (route.scope !== "*") {
        const admin = await call(tokens["*"]);
        assert.equal(admin.status, route.ok, `${label} with admin`);
        await admin.body?.cancel();
      }
      if (route.method === "GET") {
        // HEAD answers as GET does, with no body
        const head = await agent.request(route.path, { method: "HEAD", token: tokens["*"] });
        assert.equal(head.status, route.ok, `HEAD ${route.path}`);
        assert.equal((await head.arrayBuffer()).byteLength, 0, `HEAD ${route.path} has no body`);
      }
    }
    const status = await (await agent.request("/v1/status", { token: tokens["status:read"] }))
      .json();
    assert.deepEqual(status.token, { name: "status-read", scopes: ["status:read"] });
  } finally {
    await agent.stop();
  }
});

Deno.test("/metrics is Prometheus text and public with api.public_metrics = true", async () => {
  await using dir = await tempDir();
  const agent = await startAgent(dir.path, ["--set", "api.public_metrics=true"]);
  try {
    await (await agent.request("/livez")).body?.cancel();
    const res = await agent.request("/metrics");
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
    const text = await res.text();
    assert.match(text, /^loam_build_info\{version="\d+\.\d+\.\d+"\} 1$/m);
    assert.match(text, /^loam_uptime_seconds \d/m);
    assert.match(text, /^loam_http_requests_total\{method="GET",route="\/livez",code="200"\} 1$/m);
    // an error on a known route counts under that route, not "unmatched"
    await (await agent.request("/v1/status")).body?.cancel();
    await (await agent.request("/v1/deployments/x", { method: "PUT" })).body?.cancel();
    const after = await (await agent.request("/metrics")).text();
    assert.match(
      after,
      /^loam_http_requests_total\{method="GET",route="\/v1\/status",code="401"\} 1$/m,
    );
    assert.match(
      after,
      /^loam_http_requests_total\{method="PUT",route="\/v1\/deployments\/:id",code="405"\} 1$/m,
    );
  } finally {
    await agent.stop();
  }
});

Deno.test("token create --expires-in: the token works until then and gets 401 after; a bad duration is refused", async () => {
  await using dir = await tempDir();
  const agent = await startAgent(dir.path);
  try {
    const made = await tokenCreate(dir.path, "status:read", [
      "--name",
      "brief",
      "--expires-in",
      "2s",
    ]);
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stderr, /until \d{4}-\d\d-\d\dT/);
    const secret = made.stdout.trim();
    const list = await runLoam(["token", "list", "--data-dir", dir.path]);
    assert.match(list.stdout, /^brief\s+\S+\s+\d{4}-\S+\s+status:read$/m);
    const ok = await agent.request("/v1/status", { token: secret });
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
    await new Promise((r) => setTimeout(r, 2_200));
    const late = await agent.request("/v1/status", { token: secret });
    assert.equal(late.status, 401);
    assert.match((await late.json()).error.message, /expired/);
    const bad = await tokenCreate(dir.path, "status:read", ["--expires-in", "soon"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--expires-in "soon": expected a duration such as 30m/);
  } finally {
    await agent.stop();
  }
});

Deno.test("token create/list/revoke: secret shown once, stored hashed, revoked token gets 401", async () => {
  await using dir = await tempDir();
  const agent = await startAgent(dir.path);
  try {
    const secret = await createToken(dir.path, "ro", "status:read");
    assert.match(secret, /^loam_[A-Za-z0-9_-]{43}$/);
    const stored = await Deno.readTextFile(`${dir.path}/api/tokens.json`);
    assert.ok(!stored.includes(secret), "tokens.json holds no secret");
    assert.ok(!stored.includes(agent.adminToken()), "tokens.json holds no admin secret");

    const list = await runLoam(["token", "list", "--data-dir", dir.path]);
    assert.equal(list.code, 0);
    assert.match(list.stdout, /^ro\s+\S+\s+never\s+status:read$/m);
    assert.match(list.stdout, /^admin\s+\S+\s+never\s+\*$/m);
    assert.ok(!list.stdout.includes(secret));
    const json = JSON.parse(
      (await runLoam(["token", "list", "--json", "--data-dir", dir.path])).stdout,
    );
    assert.deepEqual(json.map((t: { name: string }) => t.name), ["admin", "ro"]);

    const ok = await agent.request("/v1/status", { token: secret });
    assert.equal(ok.status, 200);
    await ok.body?.cancel();

    const dup = await tokenCreate(dir.path, "status:read", ["--name", "ro"]);
    assert.equal(dup.code, 2);
    assert.match(dup.stderr, /already exists/);
    const badScope = await tokenCreate(dir.path, "status:write");
    assert.equal(badScope.code, 2);
    assert.match(badScope.stderr, /unknown scope "status:write"/);

    const revoke = await runLoam(["token", "revoke", "ro", "--data-dir", dir.path]);
    assert.equal(revoke.code, 0, revoke.stderr);
    const gone = await agent.request("/v1/status", { token: secret });
    assert.equal(gone.status, 401);
    await gone.body?.cancel();
    const again = await runLoam(["token", "revoke", "ro", "--data-dir", dir.path]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /no token named "ro"/);
  } finally {
    await agent.stop();
  }
});

Deno.test("the token API creates usable tokens and rejects oversized, non-JSON and invalid bodies", async () => {
  await using dir = await tempDir();
  const agent = await startAgent(dir.path, ["--set", "api.max_body_bytes=2048"]);
  const admin = agent.adminToken();
  try {
    const created = await agent.request("/v1/tokens", {
      method: "POST",
      token: admin,
      body: JSON.stringify({ name: "api-made", scopes: ["status:read"] }),
    });
    assert.equal(created.status, 201);
    const { token } = await created.json();
    const status = await agent.request("/v1/status", { token });
    assert.equal(status.status, 200);
    await status.body?.cancel();

    const cases: [BodyInit, number, string][] = [
      ["x".repeat(4096), 413, "payload_too_large"],
      [
        new ReadableStream({
          start(c) {
            for (let i = 0; i < 4; i++) c.enqueue(new TextEncoder().encode("y".repeat(1024)));
            c.close();
          },
        }),
        413,
        "payload_too_large",
      ],
      ["name=x&scopes=y", 400, "invalid_json"],
      ["", 400, "invalid_json"],
      [JSON.stringify({ name: "x", scopes: ["root"] }), 400, "invalid_request"],
      [JSON.stringify({ name: "bad name!", scopes: ["status:read"] }), 400, "invalid_request"],
      [JSON.stringify({ name: "api-made", scopes: ["status:read"] }), 400, "invalid_request"],
    ];
    for (const [body, code, errorCode] of cases) {
      const res = await agent.request("/v1/tokens", { method: "POST", token: admin, body });
      assert.equal(res.status, code, `${String(body).slice(0, 40)}`);
      assert.equal((await res.json()).error.code, errorCode);
    }
    const list = await (await agent.request("/v1/tokens", { token: admin })).json();
    assert.deepEqual(list.tokens.map((t: { name: string }) => t.name), ["admin", "api-made"]);
    assert.ok(!JSON.stringify(list).includes("sha256"), "hashes are not exposed");
  } finally {
    await agent.stop();
  }
});

Deno.test("unknown routes get 404 and wrong methods 405, as JSON errors", async () => {
  await using dir = await tempDir();
  const agent = await startAgent(dir.path);
  try {
    const missing = await agent.request("/v1/nothing");
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).error.code, "not_found");
    const wrong = await agent.request("/v1/status", { method: "PUT", token: agent.adminToken() });
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get("allow"), "GET, HEAD");
    assert.equal((await wrong.json()).error.code, "method_not_allowed");
  } finally {
    await agent.stop();
  }
});
