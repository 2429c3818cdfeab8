/**
 * @module
 * Where an inference request runs: here when the model is loaded here with room in its queue,
 * otherwise on a fleet peer that runs it (the mesh's router), the raw body passed on as it came.
 */

import type { RoutedJob } from "../mesh/infer_router.ts";
import type { LocalModel } from "../mesh/infer_executor.ts";
import type { TokenRecord } from "./tokens.ts";

/** What the inference routes need from the mesh to send a job elsewhere. */
export interface JobRouting {
  /** Runs the job on a peer serving its model; undefined when no connected peer does. */
  forward(job: RoutedJob): Promise<Response | undefined>;
  /** A routable job runs here (counted in `loam_fleet_jobs_total{where="local"}`). */
  ranLocally(): void;
}

/**
 * Sends the request to a peer when `local` (the model here, if any) cannot take it: absent, or
 * its queue full. Resolves with the peer's answer, or undefined when the job runs here (or no
 * peer has the model: the route answers 404 or 429 itself). A model loading here waits for it.
 */
export async function forwardedJob(
  routing: JobRouting | undefined,
  local: LocalModel | "loading" | undefined,
  job: { req: Request; path: string; model: string; body: Uint8Array; token?: TokenRecord },
): Promise<Response | undefined> {
  if (!routing) return undefined;
  if (local === "loading" || (local !== undefined && !local.full)) {
    routing.ranLocally();
    return undefined;
  }
  const forwarded = await routing.forward({
    path: job.path,
    model: job.model,
    body: job.body,
    contentType: job.req.headers.get("content-type") ?? "application/json",
    accept: job.req.headers.get("accept") ?? "*/*",
    client: job.token?.name ?? "anonymous",
    signal: job.req.signal,
    ...(local ? { localBlob: local.blobHash } : {}),
  });
  if (!forwarded && local) routing.ranLocally();
  return forwarded;
}
