import type { Route } from "../router.ts";
import { HttpError, jsonResponse } from "../../system/http_error.ts";
import type { InstanceView, WorkloadUsage } from "../../runtimes/adapter.ts";
import type { LogLine } from "../../runtimes/log_ring.ts";
import { followLog } from "../log_follow.ts";

/** What the instance routes need from the agent. */
export interface InstancesDeps {
  /** Instances of every adapter. */
  instances(): InstanceView[];
  /** CPU and memory of the instances with a process of their own, by instance id. */
  usage(): Promise<Map<string, WorkloadUsage>>;
  /** The last output lines of an instance; undefined when there is no such instance. */
  instanceLogs(id: string, lines?: number): Promise<LogLine[] | undefined>;
  /** Aborts when the agent stops: followed logs end then, so the server can close. */
  closing: AbortSignal;
}

/** Lines read for each answer (more than any adapter keeps), then narrowed by since and lines. */
const LOG_SCAN = 1000;

/** What `GET /v1/instances/{id}/logs` was asked for. */
interface LogQuery {
  lines: number;
  /** Only lines at or after this time (ms since the epoch). */
  since?: number;
  follow: boolean;
}

/**
 * Reads `lines=N` (default 100), `since=<RFC 3339 time>` and `follow=1` (or `Accept:
 * text/event-stream`); any other parameter, or a malformed one, is a 400 naming it.
 */
function logQuery(url: URL, req: Request): LogQuery {
  const bad = (param: string, why: string) =>
    new HttpError(400, "invalid_request", `${param}: ${why}`, {}, param);
  for (const key of url.searchParams.keys()) {
    if (!["lines", "since", "follow"].includes(key)) {
      throw bad(key, "unknown query parameter (expected lines, since or follow)");
    }
  }
  const lines = Number(url.searchParams.get("lines") ?? "100");
  if (!Number.isInteger(lines) || lines < 1) throw bad("lines", "expected a positive integer");
  const sinceText = url.searchParams.get("since");
  const since = sinceText === null ? undefined : Date.parse(sinceText);
  if (
    since !== undefined &&
    (Number.isNaN(since) || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(sinceText!))
  ) {
    throw bad(
      "since",
      `expected an RFC 3339 time such as 2026-12-04T10:00:00Z, got "${sinceText}"`,
    );
  }
  const followText = url.searchParams.get("follow");
  if (followText !== null && !["0", "1", "true", "false"].includes(followText)) {
    throw bad("follow", `expected 1 or 0, got "${followText}"`);
  }
  const wantsEvents = (req.headers.get("accept") ?? "").includes("text/event-stream");
  return { lines, since, follow: followText === "1" || followText === "true" || wantsEvents };
}

/**
 * `GET /v1/instances`, `/v1/instances/{id}` and `/v1/instances/{id}/logs?lines=N&since=T`, which
 * with `follow=1` streams new lines as server-sent events until the client leaves.
 */
export function instanceRoutes(deps: InstancesDeps): Route[] {
  return [
    {
      method: "GET",
      path: "/v1/instances",
      scope: "status:read",
      etag: true,
      handler: async () => {
        const usage = await deps.usage();
        return jsonResponse({
          instances: deps.instances().map((i) => ({ ...i, ...usage.get(i.instance_id) })),
        });
      },
    },
    {
      method: "GET",
      path: "/v1/instances/:id",
      scope: "status:read",
      etag: true,
      handler: async ({ params }) => {
        const instance = deps.instances().find((i) => i.instance_id === params.id);
        if (!instance) throw new HttpError(404, "not_found", `no instance ${params.id}`);
        return jsonResponse({ ...instance, ...(await deps.usage()).get(instance.instance_id) });
      },
    },
    {
      method: "GET",
      path: "/v1/instances/:id/logs",
      scope: "status:read",
      handler: async ({ params, url, req }) => {
        const query = logQuery(url, req);
        const tail = (logs: LogLine[]) =>
          logs.filter((l) => query.since === undefined || Date.parse(l.at) >= query.since)
            .slice(-query.lines);
        // always a long tail: since= and a follower's polls must see every line
        const read = () => deps.instanceLogs(params.id!, LOG_SCAN);
        const logs = await read();
        if (!logs) throw new HttpError(404, "not_found", `no instance ${params.id}`);
        if (!query.follow) return jsonResponse({ instance_id: params.id, lines: tail(logs) });
        return followLog(tail(logs), read, AbortSignal.any([req.signal, deps.closing]));
      },
    },
  ];
}
