import { z } from "zod";
import type { Route } from "./router.ts";
import { errorResponse, HttpError, jsonResponse } from "./http_error.ts";
import { readJsonBody, validBody } from "./body.ts";
import { SCOPES } from "./scopes.ts";
import type { TokenStore } from "./tokens.ts";
import type { ApiMetrics } from "./metrics.ts";
import type { StatusReport } from "./status.ts";
import type { BlobsReport } from "../deploy/references.ts";
import type { BlobRequest, FetchProgress } from "../blobs/fetcher.ts";
import type { PeerView } from "../mesh/peers.ts";
import { type DeploymentDirective, DeploymentDirectiveSchema } from "../protocol/directive.ts";
import type { CancelResult, SubmitResult } from "../deploy/engine.ts";
import type { DeploymentRecord } from "../deploy/records.ts";
import type { InstanceView } from "../runtimes/adapter.ts";
import type { LogLine } from "../runtimes/log_ring.ts";
import { UserError } from "../system/errors.ts";
import { inferOnnx } from "./infer_onnx.ts";
import type { OnnxInference } from "../runtimes/onnx_model.ts";
import { answerJobErrors } from "./job_errors.ts";
import { chatCompletions, inferLlm, readChatBody } from "./infer_llm.ts";
import type { LlmInference } from "../runtimes/gguf_model.ts";
import type { ModelView } from "../deploy/models.ts";

/** The state the API reads; it never reaches into other modules' internals. */
export interface ApiState {
  /** True once start-up finished and until shutdown begins. */
  isReady(): boolean;
  status(): StatusReport;
  /** Verified blobs with the deployments that use them, partial and running downloads. */
  blobs(): Promise<BlobsReport & { downloads: FetchProgress[] }>;
  /** Connected mesh peers. */
  peers(): PeerView[];
  /** Makes a blob present (from peers or URLs) and returns its path. */
  fetchBlob(request: BlobRequest): Promise<string>;
  /** Hands a directive from the local API to the deployment engine. */
  submitDirective(directive: DeploymentDirective): Promise<SubmitResult>;
  /** Deployment records, newest first. */
  deployments(): DeploymentRecord[];
  /** Instances of every adapter. */
  instances(): InstanceView[];
  /** The last output lines of an instance; undefined when there is no such instance. */
  instanceLogs(id: string, lines?: number): Promise<LogLine[] | undefined>;
  /** Activates a deployment waiting in `ready`; undefined when there is none with that id. */
  activateDeployment(id: string): Promise<DeploymentRecord | undefined>;
  /**
   * DELETE of a deployment in any state: stops it (rolled_back) or, when it is final, removes
   * its record; undefined when there is none with that id.
   */
  cancelDeployment(id: string): Promise<CancelResult | undefined>;
  /** ONNX and GGUF models among the deployments, with their Peat model status. */
  models(): ModelView[];
  /** The model behind an ONNX instance: "loading" while it loads, undefined if there is none. */
  onnxModel(id: string): OnnxInference | "loading" | undefined;
  /** The LLM an instance id or model name refers to: "loading" while it loads, else undefined. */
  llm(nameOrId: string): LlmInference | "loading" | undefined;
  tokens: TokenStore;
  metrics: ApiMetrics;
  maxBodyBytes: number;
  /** Limit for inference request bodies (`jobs.max_input_bytes`). */
  maxInputBytes: number;
}

const FetchBlobBody = z.strictObject({
  sha256: z.string(),
  size: z.number().int().min(0).optional(),
  urls: z.array(z.string()).default([]),
});

/** Parses a JSON body against a schema; a mismatch is a 400 naming the field. */
async function parseBody<T extends z.ZodType>(
  req: Request,
  maxBytes: number,
  schema: T,
): Promise<z.infer<T>> {
  return validBody(schema, await readJsonBody(req, maxBytes));
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

/**
 * A handler that applies `change` to the deployment named in the path: 404 when there is no
 * such deployment, 409 (`conflictCode`) when its state does not allow the change.
 */
function changeDeployment(
  change: (id: string) => Promise<DeploymentRecord | undefined>,
  conflictCode: string,
): Route["handler"] {
  return async ({ params }) => {
    let record: DeploymentRecord | undefined;
    try {
      record = await change(params.id!);
    } catch (err) {
      throw new HttpError(409, conflictCode, (err as Error).message);
    }
    if (!record) throw new HttpError(404, "not_found", `no deployment ${params.id}`);
    return jsonResponse(record);
  };
}

/** The loaded LLM named `nameOrId`: 404 when there is none, 503 while it loads. */
function loadedLlm(state: ApiState, nameOrId: string): LlmInference {
  const llm = state.llm(nameOrId);
  if (llm === undefined) {
    throw new HttpError(404, "model_not_found", `no GGUF model instance or name "${nameOrId}"`);
  }
  if (llm === "loading") {
    throw new HttpError(503, "loading", `model ${nameOrId} is loading`, { "retry-after": "1" });
  }
  return llm;
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
      handler: ({ token }) =>
        jsonResponse({
          ...state.status(),
          // what the calling token may do here
          token: token ? { name: token.name, scopes: token.scopes } : null,
        }),
    },
    {
      method: "GET",
      path: "/v1/blobs",
      scope: "status:read",
      handler: async () => jsonResponse(await state.blobs()),
    },
    {
      method: "POST",
      path: "/v1/blobs",
      scope: "deploy:write",
      handler: async ({ req }) => {
        const body = await parseBody(req, state.maxBodyBytes, FetchBlobBody);
        let path: string;
        try {
          path = await state.fetchBlob(body);
        } catch (err) {
          if (!(err instanceof UserError)) throw err;
          const badInput = err.exitCode === 2;
          throw new HttpError(
            badInput ? 400 : 502,
            badInput ? "invalid_request" : "fetch_failed",
            err.message,
          );
        }
        const size_bytes = (await Deno.stat(path)).size;
        return jsonResponse({ sha256: path.slice(-64), path, size_bytes });
      },
    },
    {
      method: "POST",
      path: "/v1/deployments",
      scope: "deploy:write",
      handler: async ({ req }) => {
        const body = await readJsonBody(req, state.maxBodyBytes);
        if (body === null || typeof body !== "object" || Array.isArray(body)) {
          throw new HttpError(400, "invalid_request", "body: expected a directive object");
        }
        const local = { issued_at: new Date().toISOString(), issuer_node_id: "local-api", ...body };
        const directive = validBody(DeploymentDirectiveSchema, local);
        const result = await state.submitDirective(directive);
        switch (result.outcome) {
          case "accepted":
            return jsonResponse(result.record, 202);
          case "not_targeted":
            return jsonResponse({
              directive_id: directive.directive_id,
              targeted: false,
              reason: result.reason,
            });
          case "replay":
            throw new HttpError(409, "replay", result.reason);
          case "expired":
            throw new HttpError(400, "expired", result.reason);
        }
      },
    },
    {
      method: "GET",
      path: "/v1/deployments",
      scope: "status:read",
      handler: () => jsonResponse({ deployments: state.deployments() }),
    },
    {
      method: "GET",
      path: "/v1/deployments/:id",
      scope: "status:read",
      handler: ({ params }) => {
        const record = state.deployments().find((d) => d.directive_id === params.id);
        if (!record) throw new HttpError(404, "not_found", `no deployment ${params.id}`);
        return jsonResponse(record);
      },
    },
    {
      method: "POST",
      path: "/v1/deployments/:id/activate",
      scope: "deploy:write",
      handler: changeDeployment(state.activateDeployment, "not_ready"),
    },
    {
      method: "DELETE",
      path: "/v1/deployments/:id",
      scope: "deploy:write",
      handler: async ({ params }) => {
        const result = await state.cancelDeployment(params.id!);
        if (!result) throw new HttpError(404, "not_found", `no deployment ${params.id}`);
        if (result.outcome === "removed") return jsonResponse(result);
        return jsonResponse({ outcome: result.outcome, ...result.record });
      },
    },
    {
      method: "GET",
      path: "/v1/instances",
      scope: "status:read",
      handler: () => jsonResponse({ instances: state.instances() }),
    },
    {
      method: "GET",
      path: "/v1/instances/:id",
      scope: "status:read",
      handler: ({ params }) => {
        const instance = state.instances().find((i) => i.instance_id === params.id);
        if (!instance) throw new HttpError(404, "not_found", `no instance ${params.id}`);
        return jsonResponse(instance);
      },
    },
    {
      method: "GET",
      path: "/v1/instances/:id/logs",
      scope: "status:read",
      handler: async ({ params, url }) => {
        const lines = Number(url.searchParams.get("lines") ?? "100");
        if (!Number.isInteger(lines) || lines < 1) {
          throw new HttpError(400, "invalid_request", "lines: expected a positive integer");
        }
        const logs = await state.instanceLogs(params.id!, lines);
        if (!logs) throw new HttpError(404, "not_found", `no instance ${params.id}`);
        return jsonResponse({ instance_id: params.id, lines: logs });
      },
    },
    {
      method: "POST",
      path: "/v1/instances/:id/infer",
      scope: "infer:run",
      handler: ({ req, params, token }) => {
        const instance = state.instances().find((i) => i.instance_id === params.id);
        if (!instance) throw new HttpError(404, "not_found", `no instance ${params.id}`);
        const client = token?.name ?? "anonymous";
        if (instance.adapter === "onnx_model") {
          const model = state.onnxModel(params.id!);
          if (model === undefined || model === "loading") {
            throw new HttpError(503, "loading", `instance ${params.id} is loading its model`, {
              "retry-after": "1",
            });
          }
          return answerJobErrors(() => inferOnnx(req, model, client, state.maxInputBytes));
        }
        if (instance.adapter === "gguf_model") {
          const llm = loadedLlm(state, params.id!);
          return answerJobErrors(() => inferLlm(req, llm, client, state.maxInputBytes));
        }
        throw new HttpError(
          400,
          "not_inferable",
          `instance ${params.id} is a ${instance.adapter}, which takes no inference requests`,
        );
      },
    },
    {
      method: "GET",
      path: "/v1/models",
      scope: "status:read",
      handler: () => {
        const models = state.models();
        // `object` and `data` make this OpenAI's model list too (ids usable as `model`)
        const data = models.filter((m) => m.status === "Loaded" && m.instance_id).map((m) => ({
          id: m.instance_id,
          object: "model",
          created: 0,
          owned_by: "loam",
        }));
        return jsonResponse({ object: "list", data, models });
      },
    },
    {
      method: "POST",
      path: "/v1/chat/completions",
      scope: "infer:run",
      handler: async ({ req, token }) => {
        const body = await readChatBody(req, state.maxInputBytes);
        const llm = loadedLlm(state, body.model);
        return answerJobErrors(() => chatCompletions(req, body, llm, token?.name ?? "anonymous"));
      },
    },
    {
      method: "GET",
      path: "/v1/peers",
      scope: "status:read",
      handler: () => jsonResponse({ peers: state.peers() }),
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
        const { name, scopes } = await parseBody(req, state.maxBodyBytes, CreateTokenBody);
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
