import type { InferReceipt } from "../protocol/infer_job.ts";

/** Jobs kept: the last this many, none older than {@link MAX_AGE_MS}. */
const MAX_JOBS = 1000;
const MAX_AGE_MS = 24 * 3600_000;

/** One job routed over the mesh, as `GET /v1/jobs/{id}` shows it. */
export interface JobRecord {
  job_id: string;
  model: string;
  blob_hash: string;
  /** `forwarded`: this node sent it to `peer`; `served`: this node ran it for `peer`. */
  where: "forwarded" | "served";
  peer: string;
  /** The caller's token name on the entry node. */
  client: string;
  state: "running" | "completed" | "failed";
  /** The HTTP status of the answer, once there is one. */
  status: number | null;
  started_at: string;
  finished_at: string | null;
  error?: string;
  /** The executor's signed receipt, verified (forwarded jobs: what the peer signed). */
  receipt: InferReceipt | null;
}

/**
 * The mesh jobs this node forwarded or served, by job id: the last 1,000 of the past 24 h, so a
 * busy node's log stays bounded while a caller can still look up the answer it just had.
 */
export class JobLog {
  readonly #jobs = new Map<string, JobRecord>();

  /** Starts a record (state `running`). */
  start(
    fields: Omit<JobRecord, "state" | "status" | "started_at" | "finished_at" | "receipt">,
  ): JobRecord {
    const record: JobRecord = {
      ...fields,
      state: "running",
      status: null,
      started_at: new Date().toISOString(),
      finished_at: null,
      receipt: null,
    };
    this.#jobs.delete(fields.job_id); // a served job's id is its entry node's: keep the newest
    this.#jobs.set(fields.job_id, record);
    this.#prune();
    return record;
  }

  /** Ends a record: completed with its receipt, or failed with why. */
  finish(
    record: JobRecord,
    outcome: { status: number | null; receipt?: InferReceipt; error?: string },
  ): void {
    record.state = outcome.error === undefined ? "completed" : "failed";
    record.status = outcome.status;
    record.finished_at = new Date().toISOString();
    if (outcome.receipt) record.receipt = outcome.receipt;
    if (outcome.error !== undefined) record.error = outcome.error;
  }

  /** The job, if it is still kept. */
  get(jobId: string): JobRecord | undefined {
    this.#prune();
    return this.#jobs.get(jobId);
  }

  #prune(): void {
    const oldest = new Date(Date.now() - MAX_AGE_MS).toISOString();
    for (const [id, record] of this.#jobs) {
      if (this.#jobs.size <= MAX_JOBS && record.started_at >= oldest) break;
      this.#jobs.delete(id);
    }
  }
}
