/**
 * Fuzz family "api": hostile requests to every route of a real agent (the route table is read
 * from `apiRoutes`, so a new route is fuzzed without editing this file): odd methods, path
 * parameters and query strings, missing, wrong or under-scoped tokens, hostile headers, and
 * bodies that are random bytes, hostile JSON or mutations of a valid body. The agent holds a
 * loaded ONNX model, so inference bodies reach the tensor parser. An answer below 500 with
 * `{"error": {"message"}}` (or a 502/503 with one) is a rejection with a reason; a 500, a
 * dropped connection or a dead agent is a crash.
 * @module
 */
import fc from "fast-check";
import { apiRoutes } from "../src/api/routes.ts";
import type { ApiDeps } from "../src/api/routes.ts";
import { type AgentProcess, startAgent } from "../tests/e2e/harness.ts";
import { eventually } from "../tests/e2e/mesh_helpers.ts";
import { sha256Hex, startBlobServer } from "../tests/fixtures/blob_server.ts";
import { tinyOnnxModel } from "../tests/fixtures/tiny_onnx.ts";
import { describe, draw, hostileValue, jsonText, mutatedJson, randomBytes } from "./fuzz_inputs.ts";
import { FamilyTally, type Outcome } from "./fuzz_tally.ts";

const MODEL_ID = "fuzz-model";
/** A closed loopback port: a body that stays valid never leaves the machine. */
const NOWHERE = "http://127.0.0.1:9/x";

/** A valid body per route (absent: the route takes none), to mutate. */
function validBodies(): Record<string, unknown> {
  const tensors = { inputs: { x: { dims: [1, 4], type: "float32", data: [1, 2, 3, 4] } } };
  const model = {
    model_id: MODEL_ID,
    name: "Fuzz",
    version: "1.0.0",
    model_type: "LLM",
    tags: ["edge"],
    manifest: {
      model_id: MODEL_ID,
      format: "gguf",
      sha256: "1".repeat(64),
      size_bytes: 10,
      download_url: NOWHERE,
    },
  };
  return {
    "POST /v1/deployments": {
      directive_id: "fuzz-api",
      scope: { type: "broadcast" },
      artifact: {
        blob_hash: `sha256:${"1".repeat(64)}`,
        size_bytes: 10,
        urls: [NOWHERE],
        artifact_type: { type: "native_binary", arch: "x86_64", args: [] },
      },
    },
    "POST /v1/blobs": { sha256: "1".repeat(64), size: 10, urls: [NOWHERE] },
    "POST /v1/tokens": { name: "fuzz", scopes: ["status:read"] },
    "POST /v1/instances/:id/infer": tensors,
    "POST /v1/models/:name/infer": tensors,
    "POST /v1/chat/completions": { model: MODEL_ID, messages: [{ role: "user", content: "hi" }] },
    "POST /v1/completions": { model: MODEL_ID, prompt: "hi", max_tokens: 4 },
    "POST /v1/embeddings": { model: MODEL_ID, input: ["hi"] },
    "POST /api/show": { model: MODEL_ID },
    "POST /api/chat": { model: MODEL_ID, messages: [{ role: "user", content: "hi" }] },
    "POST /api/generate": { model: MODEL_ID, prompt: "hi" },
    "POST /api/embed": { model: MODEL_ID, input: "hi" },
    "POST /v1/console/codes": { scopes: ["status:read"] },
    "POST /v1/console/session": { code: "0".repeat(32) },
    "POST /v1/registry/models": model,
    "PUT /v1/registry/models/:id": model,
    "POST /v1/registry/agents": { agent_id: "fuzz-agent", name: "Fuzz", version: "1.0.0" },
    "PUT /v1/registry/agents/:id": { agent_id: "fuzz-agent", name: "Fuzz", version: "1.0.0" },
    "POST /v1/registry/models/search": { type: "LLM", tags: ["edge"], text: "fuzz" },
  };
}

interface Request {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Uint8Array;
}

/** Path parameters a client might send: real ids, junk, traversal, encodings, huge. */
const PARAM = fc.oneof(
  fc.constantFrom(MODEL_ID, `onnx-${MODEL_ID}`, "..", "%2e%2e%2f", "%00", "a%2Fb", "%ZZ", "\u202e"),
  fc.string({ maxLength: 40 }).map(encodeURIComponent),
  fc.integer({ min: 1000, max: 20_000 }).map((n) => "a".repeat(n)),
);

function requests(count: number, seed: number, tokens: Record<string, string>): Request[] {
  const routes = apiRoutes({} as ApiDeps).map((r) => ({ method: r.method, path: r.path }));
  const bodies = validBodies();
  const auth = fc.oneof(
    { arbitrary: fc.constantFrom(...Object.values(tokens).map((t) => `Bearer ${t}`)), weight: 6 },
    fc.constantFrom(
      "",
      "Bearer",
      "Bearer ",
      "Basic YWRtaW46YWRtaW4=",
      `Bearer ${"x".repeat(10_000)}`,
    ),
    fc.string({ maxLength: 80 }).map((s) => `Bearer ${s}`),
  );
  const contentType = fc.constantFrom(
    "application/json",
    "text/plain",
    "application/octet-stream",
    "multipart/form-data; boundary=x",
    "multipart/form-data",
    "application/json; charset=utf-16",
    "",
  );
  const request = fc.record({
    route: fc.constantFrom(...routes),
    method: fc.oneof(
      { arbitrary: fc.constant(""), weight: 8 },
      { arbitrary: fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"), weight: 1 },
    ),
    param: PARAM,
    query: fc.oneof(
      fc.constant(""),
      fc.constantFrom("?lines=-1", "?lines=1e9", "?lines=abc", "?lines=", "?a=%ZZ"),
      fc.string({ maxLength: 30 }).map((s) => `?${encodeURIComponent(s)}=${encodeURIComponent(s)}`),
    ),
    auth,
    contentType,
    extra: fc.dictionary(
      fc.constantFrom(
        "x-forwarded-for",
        "content-length",
        "accept",
        "x-loam-dims",
        "x-loam-type",
        "range",
      ),
      fc.string({ maxLength: 60 }).map((s) => s.replace(/[^\x20-\x7e]/g, "")),
      { maxKeys: 2 },
    ),
    body: fc.oneof(
      { arbitrary: fc.constant<"valid" | "none">("valid"), weight: 4 },
      { arbitrary: fc.constant<"valid" | "none">("none"), weight: 1 },
      { arbitrary: hostileValue().map((v) => new TextEncoder().encode(jsonText(v))), weight: 2 },
      { arbitrary: randomBytes(), weight: 1 },
    ),
    mutation: fc.nat(),
  });
  const mutations = new Map(
    Object.entries(bodies).map(([key, body]) => [key, draw(mutatedJson(body), 64, seed)]),
  );
  return draw(request, count, seed).map((r) => {
    const key = `${r.route.method} ${r.route.path}`;
    const pick = mutations.get(key);
    let body: Uint8Array | undefined;
    if (r.body === "valid") {
      body = pick ? new TextEncoder().encode(jsonText(pick[r.mutation % pick.length])) : undefined;
    } else if (r.body !== "none") body = r.body;
    const headers: Record<string, string> = { ...r.extra };
    delete headers["content-length"]; // fetch sets it; a wrong one is refused by fetch itself
    if (r.auth) headers.authorization = r.auth;
    if (r.contentType && body) headers["content-type"] = r.contentType;
    const method = r.method || r.route.method;
    // the model stays loaded, so that inference bodies keep reaching the tensor parser
    const param = method === "DELETE" && r.param.includes(MODEL_ID) ? "gone" : r.param;
    return {
      method,
      path: r.route.path.replace(/:\w+/g, () => param) + r.query,
      headers,
      ...(body && !["GET", "DELETE"].includes(r.method || r.route.method) ? { body } : {}),
    };
  });
}

async function send(agent: AgentProcess, request: Request): Promise<Outcome> {
  let res: Response;
  try {
    res = await fetch(`${agent.apiUrl}${request.path}`, {
      method: request.method,
      headers: request.headers,
      body: request.body as BodyInit | undefined,
      signal: AbortSignal.timeout(15_000),
    });
  } catch (err) {
    return { kind: "crash", what: `no answer: ${(err as Error).message}` };
  }
  const text = await res.text().catch(() => "");
  // 500 is the router's answer to a handler that threw: a bug. 502/503 say why (a source
  // failed, a model is loading) and are rejections like any 4xx.
  if (res.status === 500) {
    return { kind: "crash", what: `${res.status} ${text.slice(0, 200)}` };
  }
  if (res.status < 400) return { kind: "accepted" };
  try {
    const message = JSON.parse(text)?.error?.message;
    return { kind: "rejected", reason: typeof message === "string" ? message : "" };
  } catch {
    return { kind: "rejected", reason: "" };
  }
}

/** Loads the tiny ONNX model on `agent` through its own API, so inference routes do real work. */
async function loadModel(agent: AgentProcess, url: string, model: Uint8Array): Promise<void> {
  const res = await agent.request("/v1/deployments", {
    method: "POST",
    token: agent.adminToken(),
    body: JSON.stringify({
      directive_id: MODEL_ID,
      scope: { type: "broadcast" },
      artifact: {
        blob_hash: `sha256:${sha256Hex(model)}`,
        size_bytes: model.length,
        urls: [url],
        name: MODEL_ID,
        artifact_type: { type: "onnx_model" },
      },
    }),
  });
  if (res.status !== 202) throw new Error(`model deployment refused: ${await res.text()}`);
  await eventually("the model is active", async () => {
    const r = await agent.request(`/v1/deployments/${MODEL_ID}`, { token: agent.adminToken() });
    return (await r.json()).state === "active";
  });
}

/** Runs the family; returns its tally. */
export async function fuzzApi(dir: string, count: number, seed: number): Promise<FamilyTally[]> {
  const tally = new FamilyTally("API requests (a real agent)");
  const model = tinyOnnxModel();
  await using http = startBlobServer({ "/model": { body: model } });
  const agent = await startAgent(`${dir}/agent`, ["--set", "fetch.retries=0"]);
  try {
    await loadModel(agent, http.url("/model"), model);
    const made = await agent.request("/v1/tokens", {
      method: "POST",
      token: agent.adminToken(),
      body: JSON.stringify({ name: "reader", scopes: ["status:read"] }),
    });
    const reader = (await made.json()).token as string;
    for (const request of requests(count, seed, { admin: agent.adminToken(), reader })) {
      const outcome = await send(agent, request);
      tally.record(
        outcome,
        () => `${request.method} ${request.path.slice(0, 120)} ${describe(request.body ?? "")}`,
      );
      if (outcome.kind === "crash" && await agent.request("/livez").then(() => false, () => true)) {
        throw new Error(`the agent died on ${request.method} ${request.path.slice(0, 120)}`);
      }
    }
  } finally {
    await agent.stop();
  }
  return [tally];
}
