/**
 * @module
 * The route table: every feature's routes, each declared with the scope it needs in its own file
 * under routes/. A feature is one file there and one line in each list below.
 */

import type { Route } from "./router.ts";
import { type HealthDeps, healthRoutes } from "./routes/health.ts";
import { type StatusDeps, statusRoutes } from "./routes/status.ts";
import { blobRoutes, type BlobsDeps } from "./routes/blobs.ts";
import { deploymentRoutes, type DeploymentsDeps } from "./routes/deployments.ts";
import { instanceRoutes, type InstancesDeps } from "./routes/instances.ts";
import { type InferenceDeps, inferenceRoutes } from "./routes/inference.ts";
import { chatRoutes } from "./routes/chat.ts";
import type { LlmDeps } from "./openai.ts";
import { completionRoutes } from "./routes/completions.ts";
import { embeddingRoutes } from "./routes/embeddings.ts";
import { modelRoutes, type ModelsDeps } from "./routes/models.ts";
import { type MetricsDeps, metricsRoutes } from "./routes/metrics.ts";
import { type OllamaDeps, ollamaRoutes } from "./routes/ollama.ts";
import { tokenRoutes, type TokensDeps } from "./routes/tokens.ts";
import { jobRoutes, type JobsDeps } from "./routes/jobs.ts";
import { type ConsoleDeps, consoleRoutes } from "./routes/console.ts";
import { type FleetDeps, fleetRoutes } from "./routes/fleet.ts";
import { type RegistryDeps, registryRoutes } from "./routes/registry.ts";
import { ROUTABLE_PATH } from "../protocol/infer_job.ts";

/** What the whole API needs from the agent: each feature's own small interface, together. */
export type ApiDeps =
  & HealthDeps
  & StatusDeps
  & BlobsDeps
  & DeploymentsDeps
  & InstancesDeps
  & InferenceDeps
  & LlmDeps
  & ModelsDeps
  & MetricsDeps
  & OllamaDeps
  & TokensDeps
  & JobsDeps
  & ConsoleDeps
  & FleetDeps
  & RegistryDeps;

/** Every route of the local API. */
export function apiRoutes(deps: ApiDeps): Route[] {
  return [
    healthRoutes,
    statusRoutes,
    blobRoutes,
    deploymentRoutes,
    instanceRoutes,
    inferenceRoutes,
    chatRoutes,
    completionRoutes,
    embeddingRoutes,
    modelRoutes,
    metricsRoutes,
    ollamaRoutes,
    tokenRoutes,
    jobRoutes,
    consoleRoutes,
    fleetRoutes,
    registryRoutes,
  ].flatMap((routes) => routes(deps));
}

/**
 * The routes a fleet peer's job may run on: the routable POST routes, with no routing of their
 * own (a job sent here runs here or is refused; it never travels on).
 */
export function peerJobRoutes(deps: ApiDeps): Route[] {
  const { routing: _, ...local } = deps;
  return apiRoutes(local).filter((r) =>
    r.method === "POST" && ROUTABLE_PATH.test(r.path.replace(":name", "name"))
  );
}
