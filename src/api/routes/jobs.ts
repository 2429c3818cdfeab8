import type { Route } from "../router.ts";
import { HttpError, jsonResponse } from "../../system/http_error.ts";
import type { JobRecord } from "../../mesh/job_log.ts";

/** What the job route needs from the agent. */
export interface JobsDeps {
  /** A job this node forwarded to a peer or served for one, while it is kept. */
  job(jobId: string): JobRecord | undefined;
}

/**
 * `GET /v1/jobs/{id}`: a mesh-routed job (its id is the `x-loam-job-id` header of the answer)
 * with where it ran and the executor's verified receipt; the last 1,000 jobs of 24 h are kept.
 */
export function jobRoutes(deps: JobsDeps): Route[] {
  return [{
    method: "GET",
    path: "/v1/jobs/:id",
    scope: "infer:run",
    handler: ({ params }) => {
      const job = deps.job(params.id!);
      if (!job) throw new HttpError(404, "not_found", `no job ${params.id} kept here`);
      return jsonResponse(job);
    },
  }];
}
