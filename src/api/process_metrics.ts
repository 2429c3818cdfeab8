import process from "node:process";
import { Counter, Gauge, type Registry } from "prom-client";
import { openFileCount } from "../system/process_usage.ts";
import type { WorkloadUsage } from "../runtimes/adapter.ts";

/** Where the per-workload figures come from, at each scrape. */
export interface WorkloadUsageSource {
  /** Each running workload's usage, by instance id (measured at most once a second). */
  usage(): Promise<Map<string, WorkloadUsage>>;
}

/** A counter whose value is read at scrape time from a running total kept elsewhere. */
function totalCounter(
  registry: Registry,
  name: string,
  help: string,
  read: () => Promise<[Record<string, string>, number][]> | [Record<string, string>, number][],
  labelNames: string[] = [],
): void {
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    async collect() {
      this.reset();
      for (const [labels, value] of await read()) this.inc(labels, value);
    },
  });
}

/**
 * The agent's own `process_*` metrics (CPU, resident memory, open files, start time: what
 * prom-client's defaults give under Node, read here without /proc, which Deno keeps from a
 * process without every permission), and per workload `loam_instance_cpu_seconds_total` and
 * `loam_instance_memory_bytes`, labelled `loam_instance`.
 */
export function registerProcessMetrics(
  registry: Registry,
  startedAt: number,
  workloads: WorkloadUsageSource,
): void {
  const cpu = () => process.cpuUsage();
  totalCounter(registry, "process_cpu_user_seconds_total", "User CPU time of the agent.", () => [
    [{}, cpu().user / 1e6],
  ]);
  totalCounter(
    registry,
    "process_cpu_system_seconds_total",
    "System CPU time of the agent.",
    () => [[{}, cpu().system / 1e6]],
  );
  totalCounter(registry, "process_cpu_seconds_total", "CPU time of the agent.", () => {
    const { user, system } = cpu();
    return [[{}, (user + system) / 1e6]];
  });
  new Gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory of the agent.",
    registers: [registry],
    collect() {
      this.set(Deno.memoryUsage().rss);
    },
  });
  new Gauge({
    name: "process_open_fds",
    help: "Files the agent has open.",
    registers: [registry],
    async collect() {
      const count = await openFileCount(Deno.pid);
      if (count !== undefined) this.set(count);
    },
  });
  new Gauge({
    name: "process_start_time_seconds",
    help: "When the agent started, Unix seconds.",
    registers: [registry],
  }).set(Math.floor(startedAt / 1000));
  const usage = () => workloads.usage();
  totalCounter(
    registry,
    "loam_instance_cpu_seconds_total",
    "CPU time of a workload (its process, or its container's cgroup), by instance.",
    async () =>
      [...(await usage()).entries()].flatMap(([id, u]) =>
        u.cpu_seconds === undefined ? [] : [[{ loam_instance: id }, u.cpu_seconds]]
      ),
    ["loam_instance"],
  );
  new Gauge({
    name: "loam_instance_memory_bytes",
    help: "Memory of a workload (its process, its container, or a model's weights and context " +
      "in the agent), by instance; usage_source says which.",
    labelNames: ["loam_instance", "usage_source"],
    registers: [registry],
    async collect() {
      this.reset();
      for (const [id, u] of await usage()) {
        this.set({ loam_instance: id, usage_source: u.usage_source }, u.memory_bytes);
      }
    },
  });
}
