import { Counter, Gauge, type Registry } from "prom-client";
import { DeploymentStateSchema } from "../protocol/status.ts";

/** Where the agent-state metrics are read from, at each scrape. */
export interface StateSources {
  /** States of the deployment records. */
  deploymentStates(): string[];
  /** Bytes of verified blobs in the store. */
  blobBytes(): Promise<number>;
  /** Bytes downloaded since start, by source kind. */
  fetchedBytes(): { http: number; peer: number } | undefined;
}

/**
 * Registers the metrics read from the agent's state when scraped: deployments by state, blob
 * store bytes, and bytes fetched (HTTP and peers).
 */
export function registerStateMetrics(registry: Registry, sources: StateSources): void {
  new Gauge({
    name: "loam_deployments",
    help: "Deployment records on this node, by state.",
    labelNames: ["state"],
    registers: [registry],
    collect() {
      const counts = new Map<string, number>(DeploymentStateSchema.options.map((s) => [s, 0]));
      for (const state of sources.deploymentStates()) {
        counts.set(state, (counts.get(state) ?? 0) + 1);
      }
      for (const [state, count] of counts) this.set({ state }, count);
    },
  });
  new Gauge({
    name: "loam_blobs_bytes",
    help: "Bytes of verified blobs in the store.",
    registers: [registry],
    async collect() {
      this.set(await sources.blobBytes());
    },
  });
  new Counter({
    name: "loam_fetch_bytes_total",
    help: "Bytes downloaded since start, by source (http URLs or mesh peers).",
    labelNames: ["source"],
    registers: [registry],
    collect() {
      const fetched = sources.fetchedBytes();
      if (!fetched) return;
      this.reset(); // the fetcher keeps the running total
      this.inc({ source: "http" }, fetched.http);
      this.inc({ source: "peer" }, fetched.peer);
    },
  });
}
