/**
 * @module
 * The composition root: builds the agent's services, starts them in order (store, identity,
 * runtimes, api, mesh, deploy) and stops them in reverse. Each service is one file beside this
 * one; a new feature adds a service there and one line here.
 */

import type { LoadedConfig } from "../config/load.ts";
import { createApiMetrics } from "../api/metrics.ts";
import { dataPathsFor } from "../system/paths.ts";
import type { Logger } from "../system/logger.ts";
import { resolveWorkloadUser } from "../system/workload_user.ts";
import { createServiceNotifier } from "../system/sd_notify.ts";
import { sleep } from "../system/sleep.ts";
import { VERSION } from "../version.ts";
import { startInOrder } from "./service.ts";
import { StoreService } from "./store_service.ts";
import { IdentityService } from "./identity_service.ts";
import { RuntimesService } from "./runtimes_service.ts";
import { ApiService } from "./api_service.ts";
import { MeshService } from "./mesh_service.ts";
import { DeployService } from "./deploy_service.ts";
import { RegistryService } from "./registry_service.ts";

/** A started agent. */
export interface Agent {
  /** The local API's bound address, e.g. `127.0.0.1:7411`. */
  apiAddress: string;
  /**
   * Resolves with the loam file to run next when the agent asks to be restarted (a new
   * version is in place): the caller stops it and exits with 75.
   */
  handOver: Promise<string>;
  /** Graceful stop: readiness off, drain, then every service stopped in reverse. */
  stop(): Promise<void>;
}

/**
 * Starts the agent from a validated config. A service that fails to start stops the ones
 * before it, so nothing is left bound or running.
 *
 * @throws a UserError naming the setting when the data dir, a key or a listen address is unusable.
 */
export async function startAgent(loaded: LoadedConfig, logger: Logger): Promise<Agent> {
  const { config } = loaded;
  const startedAt = Date.now();
  const paths = dataPathsFor(config.data.dir);
  const workloadUser = await resolveWorkloadUser(config.workloads.user);
  const handOver = Promise.withResolvers<string>();
  const ready = Promise.withResolvers<void>();
  const metrics = createApiMetrics(VERSION, startedAt);
  const registry = metrics.registry;
  const store = new StoreService(config, paths, workloadUser !== undefined, logger);
  const identity = new IdentityService(config, paths, logger);
  const runtimes: RuntimesService = new RuntimesService({
    config,
    paths,
    peerId: () => identity.identity.peerId,
    registry,
    workloadUser,
    activeInstances: () =>
      store.records.list().flatMap((r) =>
        r.state === "active" && r.instance_id ? [r.instance_id] : []
      ),
    onFailed: (instanceId, reason) => deploy.instanceFailed(instanceId, reason),
    selfUpdate: {
      dataDir: paths.root,
      self: Deno.env.get("LOAM_SELF"),
      version: VERSION,
      arch: Deno.build.arch,
      ready: () => ready.promise,
      peerCount: (): number => mesh.running?.peerCount() ?? 0,
      restart: (next) => handOver.resolve(next),
      logger: logger.child({ component: "self-update" }),
    },
    logger,
  });
  const core = { config, paths, logger, store, identity, runtimes };
  const registryService = new RegistryService({ config, paths, identity, registry, logger });
  const mesh: MeshService = new MeshService({
    ...core,
    registry,
    registryService,
    runJob: (req, peer) => api.runForPeer(req, peer),
  });
  const notifier = createServiceNotifier(paths.root, logger);
  /** The one-line state systemd shows (`systemctl status loam`). */
  const summary = () => {
    const states = store.records.list().map((r) => r.state);
    return `ready: api ${api.address}, ${mesh.running?.peerCount() ?? 0} peers, ` +
      `${states.filter((s) => s === "active").length} active / ` +
      `${states.filter((s) => s === "failed").length} failed deployments`;
  };
  const deploy: DeployService = new DeployService({
    ...core,
    mesh,
    onStatus: () => void notifier.status(summary()).catch(() => {}),
  });
  const api: ApiService = new ApiService({
    ...core,
    mesh,
    deploy,
    registry: registryService,
    metrics,
    startedAt,
  });
  const stopAll = await startInOrder(
    [store, identity, registryService, runtimes, api, mesh, deploy],
    logger,
  );

  api.setReady(true);
  ready.resolve();
  await notifier.ready(summary());
  logger.info("agent ready", {
    node_id: config.node.id,
    version: VERSION,
    data_dir: paths.root,
    gpus: runtimes.hardware.gpus.length,
  });
  return {
    apiAddress: api.address,
    handOver: handOver.promise,
    async stop() {
      api.setReady(false);
      await notifier.stopping();
      logger.info("shutting down", { drain_seconds: config.api.drain_seconds });
      await sleep(config.api.drain_seconds * 1000);
      await stopAll();
      logger.info("stopped");
    },
  };
}
