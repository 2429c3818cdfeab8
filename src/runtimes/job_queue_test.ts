import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { JobQueue, JobRejected } from "./job_queue.ts";
import { createJobMetrics } from "./job_metrics.ts";

function queue(maxQueue = 10, timeoutMs = 5000) {
  const registry = new Registry();
  return {
    registry,
    queue: new JobQueue({
      instanceId: "i1",
      maxQueue,
      timeoutMs,
      concurrency: 1,
      metrics: createJobMetrics(registry),
    }),
  };
}

/** A job that runs until released, recording its start in `order`. */
function gate(order: string[], name: string) {
  let release!: () => void;
  const released = new Promise<void>((r) => release = r);
  return {
    release: () => release(),
    work: async () => {
      order.push(name);
      await released;
      return name;
    },
  };
}

Deno.test("jobs of different clients take turns; priority goes first", async () => {
  const { queue: q } = queue();
  const order: string[] = [];
  const first = gate(order, "blocker");
  const blocker = q.run({ client: "x" }, first.work);
  const done: Promise<string>[] = [];
  for (const n of [1, 2, 3]) done.push(q.run({ client: "a" }, () => Promise.resolve(`a${n}`)));
  for (const n of [1, 2]) done.push(q.run({ client: "b" }, () => Promise.resolve(`b${n}`)));
  done.push(q.run({ client: "c", priority: "high" }, () => Promise.resolve("c-high")));
  for (const job of done) job.then((name) => order.push(name));
  assert.equal(q.depth, 6);
  first.release();
  await blocker;
  await Promise.all(done);
  assert.deepEqual(order, ["blocker", "c-high", "a1", "b1", "a2", "b2", "a3"]);
  assert.equal(q.depth, 0);
  assert.equal(q.running, 0);
  q.close("test over");
});

Deno.test("a full queue refuses with queue_full and a Retry-After", async () => {
  const { queue: q, registry } = queue(1);
  const order: string[] = [];
  const first = gate(order, "running");
  const running = q.run({ client: "a" }, first.work);
  const waiting = q.run({ client: "a" }, () => Promise.resolve("waiting"));
  await assert.rejects(
    q.run({ client: "b" }, () => Promise.resolve("refused")),
    (err: unknown) =>
      err instanceof JobRejected && err.code === "queue_full" && err.retryAfterSeconds! >= 1,
  );
  first.release();
  assert.equal(await running, "running");
  assert.equal(await waiting, "waiting");
  const text = await registry.metrics();
  assert.match(text, /loam_jobs_total\{loam_instance="i1",outcome="rejected"\} 1/);
  assert.match(text, /loam_jobs_total\{loam_instance="i1",outcome="completed"\} 2/);
  q.close("test over");
});

Deno.test("a job over its time limit is aborted; the next one still runs", async () => {
  const { queue: q } = queue(10, 100);
  let sawAbort = false;
  const slow = q.run({ client: "a" }, (signal) =>
    new Promise((resolve) => {
      signal.addEventListener("abort", () => {
        sawAbort = true;
        resolve("late");
      });
    }));
  await assert.rejects(
    slow,
    (err: unknown) => err instanceof JobRejected && err.code === "timeout",
  );
  assert.ok(sawAbort);
  assert.equal(await q.run({ client: "b" }, () => Promise.resolve("next")), "next");
  q.close("test over");
});

Deno.test("a waiting job whose client goes away leaves the queue", async () => {
  const { queue: q } = queue();
  const order: string[] = [];
  const first = gate(order, "running");
  const running = q.run({ client: "a" }, first.work);
  const client = new AbortController();
  const gone = q.run({ client: "b", signal: client.signal }, () => Promise.resolve("never"));
  assert.equal(q.depth, 1);
  client.abort();
  await assert.rejects(
    gone,
    (err: unknown) => err instanceof JobRejected && err.code === "cancelled",
  );
  assert.equal(q.depth, 0);
  first.release();
  await running;
  assert.deepEqual(order, ["running"]);
  q.close("test over");
});

Deno.test("closing rejects waiting jobs and refuses new ones", async () => {
  const { queue: q } = queue();
  const order: string[] = [];
  const first = gate(order, "running");
  const running = q.run({ client: "a" }, first.work);
  const waiting = q.run({ client: "a" }, () => Promise.resolve("never"));
  q.close("instance i1 was deactivated");
  await assert.rejects(waiting, /deactivated/);
  await assert.rejects(q.run({ client: "a" }, () => Promise.resolve(1)), /deactivated/);
  first.release();
  assert.equal(await running, "running");
  q.close("test over");
});
