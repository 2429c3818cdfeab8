import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** The agent's Prometheus registry and the HTTP metrics the router records. */
export interface ApiMetrics {
  registry: Registry;
  /** Records one finished request by route pattern (not raw path, to bound cardinality). */
  observeRequest(method: string, route: string, status: number, seconds: number): void;
}

/** Creates the registry with build info, uptime and HTTP request metrics. */
export function createApiMetrics(version: string, startedAt: number): ApiMetrics {
  const registry = new Registry();
  new Gauge({
    name: "loam_build_info",
    help: "Agent version (value is always 1).",
    labelNames: ["version"],
    registers: [registry],
  }).set({ version }, 1);
  new Gauge({
    name: "loam_uptime_seconds",
    help: "Seconds since the agent started.",
    registers: [registry],
    collect() {
      this.set((Date.now() - startedAt) / 1000);
    },
  });
  const requests = new Counter({
    name: "loam_http_requests_total",
    help: "Local API requests by method, route and status code.",
    labelNames: ["method", "route", "code"],
    registers: [registry],
  });
  const duration = new Histogram({
    name: "loam_http_request_duration_seconds",
    help: "Local API request latency.",
    labelNames: ["route"],
    buckets: [0.001, 0.005, 0.025, 0.1, 0.5, 2.5],
    registers: [registry],
  });
  return {
    registry,
    observeRequest(method, route, status, seconds) {
      requests.inc({ method, route, code: String(status) });
      duration.observe({ route }, seconds);
    },
  };
}
