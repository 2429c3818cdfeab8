import type { JobMetrics } from "./job_metrics.ts";

/** Job priorities, most urgent first (the same words as deployment priorities). */
export const JOB_PRIORITIES = ["critical", "high", "normal", "low"] as const;

/** How urgent a job is. */
export type JobPriority = typeof JOB_PRIORITIES[number];

/** Why a job did not run to its end; the API maps `code` to a status. */
export class JobRejected extends Error {
  /** `queue_full` (429), `timeout` (504), `cancelled` (client gone), `closed` (instance gone). */
  readonly code: "queue_full" | "timeout" | "cancelled" | "closed";
  /** For `queue_full`: seconds after which a retry has a fair chance. */
  readonly retryAfterSeconds?: number;

  constructor(code: JobRejected["code"], message: string, retryAfterSeconds?: number) {
    super(message);
    this.name = "JobRejected";
    this.code = code;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** Who asked and how urgently; `signal` aborts when the client goes away. */
export interface JobRequest {
  /** The API token's name: jobs of different clients take turns. */
  client: string;
  priority?: JobPriority;
  signal?: AbortSignal;
}

/** Settings of one instance's queue. */
export interface JobQueueOptions {
  /** The instance the queue belongs to (metrics label). */
  instanceId: string;
  /** Jobs waiting (not running) before new ones are refused with `queue_full`. */
  maxQueue: number;
  /** Limit for one job, waiting included; the running work's signal aborts at the limit. */
  timeoutMs: number;
  /** Jobs running at once. */
  concurrency: number;
  metrics: JobMetrics;
}

interface Waiting {
  request: JobRequest;
  start: () => void;
  reject: (err: JobRejected) => void;
}

/**
 * A per-instance job queue (the MVP node's job executor): bounded, by priority, and fair —
 * within one priority, clients take turns (round-robin by token name), so one busy client
 * cannot starve the others. Every job has a time limit, and a job whose client disconnects
 * leaves the queue (or has its work aborted).
 */
export class JobQueue {
  readonly #options: JobQueueOptions;
  /** Per priority: waiting jobs by client, in turn order (a served client moves to the end). */
  readonly #waiting = new Map<JobPriority, Map<string, Waiting[]>>(
    JOB_PRIORITIES.map((p) => [p, new Map()]),
  );
  #depth = 0;
  #running = 0;
  #closed?: string;
  /** Moving average of job run time, for Retry-After. */
  #averageMs = 100;

  constructor(options: JobQueueOptions) {
    this.#options = options;
  }

  /** Jobs waiting to run. */
  get depth(): number {
    return this.#depth;
  }

  /** Jobs running now. */
  get running(): number {
    return this.#running;
  }

  /**
   * Runs `work` when its turn comes. Rejects with JobRejected when the queue is full, the job
   * times out, the client goes away or the queue is closed; otherwise with what `work` throws.
   */
  async run<T>(request: JobRequest, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const { instanceId, metrics } = this.#options;
    if (this.#closed) throw new JobRejected("closed", this.#closed);
    if (request.signal?.aborted) throw new JobRejected("cancelled", "the client went away");
    if (this.#running >= this.#options.concurrency && this.#depth >= this.#options.maxQueue) {
      metrics.finished(instanceId, "rejected");
      const retryAfter = Math.max(
        1,
        Math.ceil((this.#depth + 1) * this.#averageMs / this.#options.concurrency / 1000),
      );
      throw new JobRejected(
        "queue_full",
        `instance ${instanceId} has ${this.#depth} jobs waiting (jobs.max_queue); retry later`,
        retryAfter,
      );
    }
    const controller = new AbortController();
    const queuedAt = performance.now();
    const timer = setTimeout(
      () => controller.abort(new JobRejected("timeout", this.#timeoutMessage())),
      this.#options.timeoutMs,
    );
    const onClientGone = () =>
      controller.abort(new JobRejected("cancelled", "the client went away"));
    request.signal?.addEventListener("abort", onClientGone, { once: true });
    try {
      await this.#turn(request, controller.signal);
      const startedAt = performance.now();
      const working = work(controller.signal);
      // the slot stays taken until the work itself settles, even after a timeout answered
      working.catch(() => {}).finally(() => {
        this.#averageMs = this.#averageMs * 0.8 + (performance.now() - startedAt) * 0.2;
        this.#running--;
        metrics.running(instanceId, this.#running);
        this.#next();
      });
      const result = await Promise.race([
        working,
        new Promise<never>((_, reject) => {
          if (controller.signal.aborted) reject(controller.signal.reason);
          controller.signal.addEventListener("abort", () => reject(controller.signal.reason), {
            once: true,
          });
        }),
      ]);
      if (controller.signal.aborted) throw controller.signal.reason; // work gave up on the abort
      metrics.finished(instanceId, "completed", (performance.now() - queuedAt) / 1000);
      return result;
    } catch (err) {
      const outcome = err instanceof JobRejected && err.code !== "queue_full" ? err.code : "failed";
      metrics.finished(instanceId, outcome);
      throw err;
    } finally {
      clearTimeout(timer);
      request.signal?.removeEventListener("abort", onClientGone);
    }
  }

  /** Refuses new jobs and rejects the waiting ones with `reason` (the instance is going away). */
  close(reason: string): void {
    this.#closed = reason;
    for (const clients of this.#waiting.values()) {
      for (const jobs of clients.values()) {
        for (const job of jobs) job.reject(new JobRejected("closed", reason));
      }
      clients.clear();
    }
    this.#depth = 0;
    this.#options.metrics.queued(this.#options.instanceId, 0);
  }

  #timeoutMessage(): string {
    return `job did not finish within ${this.#options.timeoutMs / 1000} s (jobs.timeout_seconds)`;
  }

  /** Resolves when the job may start; rejects when its signal aborts while it waits. */
  #turn(request: JobRequest, signal: AbortSignal): Promise<void> {
    if (this.#running < this.#options.concurrency && this.#depth === 0) {
      this.#take();
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const clients = this.#waiting.get(request.priority ?? "normal")!;
      const job: Waiting = {
        request,
        start: () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        },
        reject: (err) => {
          signal.removeEventListener("abort", onAbort);
          reject(err);
        },
      };
      const onAbort = () => {
        const jobs = clients.get(request.client);
        const index = jobs?.indexOf(job) ?? -1;
        if (jobs && index >= 0) {
          jobs.splice(index, 1);
          if (jobs.length === 0) clients.delete(request.client);
          this.#depth--;
          this.#options.metrics.queued(this.#options.instanceId, this.#depth);
        }
        job.reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      const jobs = clients.get(request.client);
      if (jobs) jobs.push(job);
      else clients.set(request.client, [job]);
      this.#depth++;
      this.#options.metrics.queued(this.#options.instanceId, this.#depth);
    });
  }

  /** Takes a running slot. */
  #take(): void {
    this.#running++;
    this.#options.metrics.running(this.#options.instanceId, this.#running);
  }

  /** Starts the next waiting job: most urgent priority first, clients in turn within it. */
  #next(): void {
    if (this.#running >= this.#options.concurrency) return;
    for (const priority of JOB_PRIORITIES) {
      const clients = this.#waiting.get(priority)!;
      const first = clients.entries().next();
      if (first.done) continue;
      const [client, jobs] = first.value;
      const job = jobs.shift()!;
      clients.delete(client);
      if (jobs.length > 0) clients.set(client, jobs); // to the end of the turn order
      this.#depth--;
      this.#options.metrics.queued(this.#options.instanceId, this.#depth);
      this.#take();
      job.start();
      return;
    }
  }
}
