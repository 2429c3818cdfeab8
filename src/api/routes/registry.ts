import { z } from "zod";
import type { Route } from "../router.ts";
import { HttpError, jsonResponse } from "../../system/http_error.ts";
import { readJsonBody, readValidBody } from "../../system/http_body.ts";
import type { EntryView, RegistryStore } from "../../registry/registry_store.ts";
import type { EntryKind } from "../../protocol/registry_entry.ts";

/** What the registry routes need from the agent. */
export interface RegistryDeps {
  registryStore(): Pick<RegistryStore, "list" | "get" | "search" | "publish" | "remove">;
  /** Whether this node meets a model entry's manifest (`can_run_on`); true without one. */
  fitsHere(entry: EntryView): boolean;
  maxBodyBytes: number;
}

const SearchBody = z.strictObject({
  type: z.string().max(64).optional(),
  framework: z.string().max(64).optional(),
  quantization: z.string().max(64).optional(),
  tags: z.array(z.string().max(64)).max(32).optional(),
  capability: z.string().max(64).optional(),
  text: z.string().max(256).optional(),
  fits_here: z.boolean().optional(),
});

/** The routes of one kind (`models` or `agents`). */
function kindRoutes(deps: RegistryDeps, kind: EntryKind): Route[] {
  const base = `/v1/registry/${kind}s`;
  const list = kind === "model" ? "models" : "agents";
  const found = (id: string) => {
    const entry = deps.registryStore().get(kind, id);
    if (!entry) throw new HttpError(404, "not_found", `no ${kind} ${id} in the registry`);
    return entry;
  };
  return [
    {
      method: "GET",
      path: base,
      scope: "registry:read",
      etag: true,
      handler: () => jsonResponse({ [list]: deps.registryStore().list(kind) }),
    },
    {
      method: "POST",
      path: base,
      scope: "registry:write",
      handler: async ({ req }) =>
        jsonResponse(
          await deps.registryStore().publish(kind, await readJsonBody(req, deps.maxBodyBytes)),
          201,
        ),
    },
    {
      method: "GET",
      path: `${base}/:id`,
      scope: "registry:read",
      etag: true,
      handler: ({ params }) => jsonResponse(found(params.id!)),
    },
    {
      method: "PUT",
      path: `${base}/:id`,
      scope: "registry:write",
      handler: async ({ req, params }) =>
        jsonResponse(
          await deps.registryStore().publish(
            kind,
            await readJsonBody(req, deps.maxBodyBytes),
            params.id!,
          ),
        ),
    },
    {
      method: "DELETE",
      path: `${base}/:id`,
      scope: "registry:write",
      handler: async ({ params }) => {
        await deps.registryStore().remove(kind, params.id!);
        return new Response(null, { status: 204 });
      },
    },
  ];
}

/**
 * `/v1/registry/models` and `/v1/registry/agents` (read: `registry:read`; write:
 * `registry:write`), and `POST /v1/registry/models/search`. A write to an entry another node
 * owns is a 403.
 */
export function registryRoutes(deps: RegistryDeps): Route[] {
  return [
    ...kindRoutes(deps, "model"),
    ...kindRoutes(deps, "agent"),
    {
      method: "POST",
      path: "/v1/registry/models/search",
      scope: "registry:read",
      handler: async ({ req }) => {
        const { fits_here, ...filters } = await readValidBody(req, deps.maxBodyBytes, SearchBody);
        const models = deps.registryStore().search("model", {
          ...filters,
          ...(fits_here ? { fits: deps.fitsHere } : {}),
        });
        return jsonResponse({ models });
      },
    },
  ];
}
