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

/** A job between its arrival and its end. */
interface Job {
  request: JobRequest;
  /** performance.now() past which it is aborted as timed out. */
  deadline: number;
  controller: AbortController;
  /** Rejects the caller at once (abort while waiting or running). */
  fail?: (err: JobRejected) => void;
  /** Lets a waiting job run. */
  start?: () => void;
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
  readonly #waiting = new Map<JobPriority, Map<string, Job[]>>(
    JOB_PRIORITIES.map((p) => [p, new Map()]),
  );
  #depth = 0;
  #running = 0;
  #closed?: string;
  /** Moving average of job run time, for Retry-After. */
  #averageMs = 100;
  /** A job ran to its end: {@link jobsPerSecond} has a measure. */
  #ran = false;
  /** Jobs waiting or running, for the deadline sweep. */
  readonly #active = new Set<Job>();
  /** One timer per queue (not per job: that costs more than a small model's run) aborts jobs past their deadline; cleared by close(). */
  #sweeper?: ReturnType<typeof setTimeout>;

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

  /** Jobs it holds at most, running and waiting: what a peer routing jobs here may count on. */
  get capacity(): number {
    return this.#options.concurrency + this.#options.maxQueue;
  }

  /** A new job would be refused with `queue_full` now: the entry node sends it to a peer instead. */
  get full(): boolean {
    return this.#running >= this.#options.concurrency && this.#depth >= this.#options.maxQueue;
  }

  /** Recent jobs per second one slot gets through (from the run times); null before any ran. */
  get jobsPerSecond(): number | null {
    return this.#ran ? this.#options.concurrency * 1000 / Math.max(this.#averageMs, 0.001) : null;
  }

  /**
   * Runs `work` when its turn comes. Rejects with JobRejected when the queue is full, the job
   * times out, the client goes away or the queue is closed; otherwise with what `work` throws.
   */
  async run<T>(request: JobRequest, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const { instanceId, metrics } = this.#options;
    if (this.#closed) throw new JobRejected("closed", this.#closed);
    if (request.signal?.aborted) throw new JobRejected("cancelled", "the client went away");
    if (this.full) {
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
    const queuedAt = performance.now();
    const job: Job = {
      request,
      deadline: queuedAt + this.#options.timeoutMs,
      controller: new AbortController(),
    };
    this.#track(job);
    const onClientGone = () =>
      this.#abort(job, new JobRejected("cancelled", "the client went away"));
    request.signal?.addEventListener("abort", onClientGone, { once: true });
    try {
      await this.#turn(job);
      const startedAt = performance.now();
      const working = work(job.controller.signal);
      // the slot stays taken until the work itself settles, even after a timeout answered
      const release = () => {
        const took = performance.now() - startedAt;
        this.#averageMs = this.#ran ? this.#averageMs * 0.8 + took * 0.2 : took;
        this.#ran = true;
        this.#running--;
        metrics.running(instanceId, this.#running);
        this.#next();
      };
      working.then(release, release);
      const result = await new Promise<T>((resolve, reject) => {
        job.fail = reject;
        working.then(resolve, reject);
      });
      if (job.controller.signal.aborted) throw job.controller.signal.reason; // work gave up on the abort
      metrics.finished(instanceId, "completed", (performance.now() - queuedAt) / 1000);
      return result;
    } catch (err) {
      const outcome = err instanceof JobRejected && err.code !== "queue_full" ? err.code : "failed";
      metrics.finished(instanceId, outcome);
      throw err;
    } finally {
      this.#active.delete(job);
      request.signal?.removeEventListener("abort", onClientGone);
    }
  }

  /** Refuses new jobs and rejects the waiting ones with `reason` (the instance is going away). */
  close(reason: string): void {
    this.#closed = reason;
    clearTimeout(this.#sweeper);
    this.#sweeper = undefined;
    for (const clients of this.#waiting.values()) {
      for (const jobs of clients.values()) {
        for (const job of jobs) job.fail?.(new JobRejected("closed", reason));
      }
      clients.clear();
    }
    this.#depth = 0;
    this.#options.metrics.queued(this.#options.instanceId, 0);
  }

  /** Watches `job`'s deadline: arms the queue's sweep timer when none is armed. */
  #track(job: Job): void {
    this.#active.add(job);
    if (this.#sweeper === undefined) this.#arm(job.deadline);
  }

  #arm(deadline: number): void {
    this.#sweeper = setTimeout(() => this.#sweep(), Math.max(0, deadline - performance.now()));
  }

  /** Aborts the jobs past their deadline and re-arms for the earliest remaining one. */
  #sweep(): void {
    this.#sweeper = undefined;
    const now = performance.now();
    let next = Infinity;
    for (const job of this.#active) {
      if (job.deadline <= now) {
        const limit = this.#options.timeoutMs / 1000;
        this.#abort(
          job,
          new JobRejected("timeout", `job did not finish within ${limit} s (jobs.timeout_seconds)`),
        );
      } else {
        next = Math.min(next, job.deadline);
      }
    }
    if (next < Infinity) this.#arm(next);
  }

  /** Ends a job with `reason`: its work's signal aborts and its caller is answered at once. */
  #abort(job: Job, reason: JobRejected): void {
    if (job.controller.signal.aborted) return;
    this.#active.delete(job);
    job.controller.abort(reason);
    job.fail?.(reason);
  }

  /** Resolves when the job may start; rejects when it is aborted while it waits. */
  #turn(job: Job): Promise<void> {
    if (this.#running < this.#options.concurrency && this.#depth === 0) {
      this.#take();
      return Promise.resolve();
    }
    const { client, priority } = job.request;
    return new Promise<void>((resolve, reject) => {
      const clients = this.#waiting.get(priority ?? "normal")!;
      job.start = resolve;
      job.fail = (err) => {
        const jobs = clients.get(client);
        const index = jobs?.indexOf(job) ?? -1;
        if (jobs && index >= 0) {
          jobs.splice(index, 1);
          if (jobs.length === 0) clients.delete(client);
          this.#depth--;
          this.#options.metrics.queued(this.#options.instanceId, this.#depth);
        }
        reject(err);
      };
      const jobs = clients.get(client);
      if (jobs) jobs.push(job);
      else clients.set(client, [job]);
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
      job.start!();
      return;
    }
  }
}
