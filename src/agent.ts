import type { LoadedConfig } from "./config/load.ts";
import { formatListenAddress, parseListenAddress } from "./config/listen_address.ts";
import { atomicWriteFile } from "./system/atomic_write.ts";
import { dataPathsFor, ensureDataDir } from "./system/paths.ts";
import { probeLiveHardware, probeStaticHardware } from "./system/hardware.ts";
import type { Logger } from "./system/logger.ts";
import { loadOrCreateIdentity } from "./mesh/identity.ts";
import { readFleetKey } from "./mesh/fleet_key.ts";
import { TokenStore } from "./api/tokens.ts";
import { createApiMetrics } from "./api/metrics.ts";
import { registerStateMetrics } from "./api/state_metrics.ts";
import { createRouter } from "./api/router.ts";
import { apiRoutes } from "./api/routes.ts";
import { startApiServer } from "./api/server.ts";
import type { StatusReport } from "./api/status.ts";
import { type DeploymentState, TERMINAL_STATES } from "./protocol/status.ts";
import { BlobStore } from "./blobs/store.ts";
import { BlobFetcher, fetchSettings } from "./blobs/fetcher.ts";
import { freeDiskForStart } from "./blobs/gc.ts";
import { Mesh } from "./mesh/mesh.ts";
import { buildAdvert } from "./mesh/adverts.ts";
import { detectContainerRuntimes } from "./system/container_runtimes.ts";
import { DeploymentEngine } from "./deploy/engine.ts";
import { DeploymentRecords, SeenDirectives } from "./deploy/records.ts";
import { DirectiveArchive } from "./deploy/directive_archive.ts";
import { DirectiveIntake } from "./deploy/directive_intake.ts";
import { nodeFacts } from "./deploy/node_facts.ts";
import type { NodeFacts } from "./deploy/targeting.ts";
import { modelsReport } from "./deploy/models.ts";
import { loadableProviders } from "./runtimes/onnx_providers.ts";
import { createAdapters } from "./runtimes/adapters.ts";
import { blobsReport } from "./deploy/references.ts";
import { VERSION } from "./version.ts";
import { resolveWorkloadUser } from "./system/workload_user.ts";
import { createServiceNotifier } from "./system/sd_notify.ts";

/** Wait after a peer connects before re-publishing statuses (gossip needs a heartbeat). */
const REPUBLISH_DELAY_MS = 2000;
/**
 * Deployment states after which the blobs held or the instances running may have changed, so an
 * advert goes out (debounced) rather than waiting for the next `mesh.advert_interval`.
 */
const HOLDINGS_CHANGED: readonly DeploymentState[] = [
  "activating",
  "ready",
  "active",
  "failed",
  "rolled_back",
];

/** A started agent. */
export interface Agent {
  /** The local API's bound address, e.g. `127.0.0.1:7411`. */
  apiAddress: string;
  /** Graceful stop: readiness off, drain, stop the API, flush state. */
  stop(): Promise<void>;
}

async function warnIfLoose(path: string, logger: Logger): Promise<void> {
  try {
    const mode = (await Deno.stat(path)).mode;
    if (mode !== null && (mode & 0o077) !== 0) {
      logger.warn("secret file is readable by other users; run chmod 600 on it", {
        path,
        mode: `0${(mode & 0o777).toString(8)}`,
      });
    }
  } catch {
    // absent files are not loose
  }
}

/** Starts the agent from a validated config: data dir, identity, tokens, local API, mesh. */
export async function startAgent(loaded: LoadedConfig, logger: Logger): Promise<Agent> {
  const { config } = loaded;
  const startedAt = Date.now();
  const paths = dataPathsFor(config.data.dir);
  const fleetKey = config.mesh.fleet_key_file === undefined
    ? undefined
    : await readFleetKey(config.mesh.fleet_key_file);
  const workloadUser = await resolveWorkloadUser(config.workloads.user);
  await ensureDataDir(paths, workloadUser !== undefined);

  const notifier = createServiceNotifier(paths.root, logger);
  const { identity, created } = await loadOrCreateIdentity(paths.identityKey);
  logger.info(created ? "identity created" : "identity loaded", {
    peer_id: identity.peerId,
    path: paths.identityKey,
  });
  if (fleetKey) {
    logger.info("fleet key loaded: only peers holding it can join the mesh", {
      fleet_key: fleetKey.fingerprint,
    });
  } else {
    logger.warn(
      "the mesh is open: anyone who can reach the mesh port can join, read adverts and fetch " +
        "blobs; set mesh.fleet_key_file (make one with loam keys fleet)",
      { listen: config.mesh.listen },
    );
  }

  const tokens = new TokenStore(paths.tokens);
  if (await tokens.ensureAdmin(paths.adminToken)) {
    logger.info("admin token created", { path: paths.adminToken });
  }
  await tokens.refresh();
  await warnIfLoose(paths.adminToken, logger);
  await warnIfLoose(paths.tokens, logger);

  const store = new BlobStore(paths.blobs);
  await store.init();
  const settings = await fetchSettings(config);
  const records = new DeploymentRecords(paths.deployments);
  for (const problem of await records.load()) {
    logger.error("deployment record skipped", { problem });
  }
  const resumable = records.list().filter((r) => !TERMINAL_STATES.includes(r.state));
  for (
    const freed of await freeDiskForStart(
      store,
      new Set(resumable.map((r) => r.directive.artifact.blob_hash.slice("sha256:".length))),
      settings.diskReserveBytes,
    )
  ) {
    logger.warn("disk is full: removed a partial download no deployment resumes", freed);
  }
  const archive = new DirectiveArchive({
    dir: paths.directives,
    ttlHours: config.deploy.directive_ttl_hours,
    trustedIssuers: config.mesh.trusted_issuers,
    maxMessageBytes: config.mesh.max_message_bytes,
    logger,
  });
  for (const problem of await archive.load()) {
    logger.warn("archived directive dropped", { problem });
  }
  const seen = new SeenDirectives(paths.seenDirectives);
  const seenProblem = await seen.load();
  if (seenProblem) logger.error("replay-protection file skipped", { problem: seenProblem });
  const hardware = await probeStaticHardware();
  const metrics = createApiMetrics(VERSION, startedAt);
  const { adapters, onnx, gguf } = createAdapters({
    config,
    peerId: identity.peerId,
    instancesDir: paths.instances,
    hardware,
    registry: metrics.registry,
    logger,
    workloadUser,
    onFailed: (instanceId, reason) => late.engine?.instanceFailed(instanceId, reason),
  });
  /** Every runtime instance this node runs now, for the API and the adverts. */
  const instances = () => [...adapters.values()].flatMap((adapter) => adapter.list());

  let ready = false;
  /** Started after the API, so /livez answers (and /readyz says 503) while they come up. */
  const late: {
    mesh?: Mesh;
    fetcher?: BlobFetcher;
    engine?: DeploymentEngine;
    facts?: () => NodeFacts;
  } = {};
  const engineReady = (): DeploymentEngine => {
    if (!late.engine) throw new Error("the agent is not ready for deployments yet");
    return late.engine;
  };
  const status = (): StatusReport => ({
    node_id: config.node.id,
    peer_id: identity.peerId,
    version: VERSION,
    uptime_s: Math.floor((Date.now() - startedAt) / 1000),
    started_at: new Date(startedAt).toISOString(),
    arch: hardware.arch,
    os: hardware.os,
    formation_id: config.node.formation_id ?? null,
    capabilities: config.node.capabilities,
    data_dir: paths.root,
    api: apiAddress,
    ready,
    network: config.mesh.network,
    peer_count: late.mesh?.node.getPeers().length ?? 0,
    listen_addrs: late.mesh?.listenAddrs() ?? [],
    identity_problems: late.mesh?.identityProblems() ?? [],
    mesh: { open: fleetKey === undefined, fleet_key: fleetKey?.fingerprint ?? null },
    hardware: probeLiveHardware(hardware, paths.root),
  });
  registerStateMetrics(metrics.registry, {
    deploymentStates: () => records.list().map((r) => r.state),
    blobBytes: async () => (await store.list()).reduce((sum, b) => sum + b.size_bytes, 0),
    fetchedBytes: () => late.fetcher?.receivedBytes(),
  });
  const handler = createRouter(
    apiRoutes({
      isReady: () => ready,
      status,
      blobs: async () => ({
        ...await blobsReport(store, paths.deployments),
        downloads: late.fetcher?.downloads() ?? [],
      }),
      peers: () => late.mesh?.peers.list() ?? [],
      fetchBlob: async (request) => {
        if (!late.fetcher) throw new Error("the agent is not ready to fetch yet");
        const path = await late.fetcher.ensure(request);
        late.mesh?.advertiseSoon();
        return path;
      },
      submitDirective: (directive) => engineReady().submit(directive, "api"),
      deployments: () => records.list(),
      instances,
      instanceLogs: async (id, lines) => {
        for (const adapter of adapters.values()) {
          const logs = await adapter.logs?.(id, lines);
          if (logs) return logs;
        }
        return undefined;
      },
      activateDeployment: (id) => engineReady().activateReady(id),
      cancelDeployment: (id) => engineReady().cancel(id),
      models: () => late.facts ? modelsReport(records.list(), late.facts()) : [],
      onnxModel: (id) => onnx.model(id),
      llm: (nameOrId) => gguf.model(nameOrId),
      tokens,
      metrics,
      maxBodyBytes: config.api.max_body_bytes,
      maxInputBytes: config.jobs.max_input_bytes,
    }),
    { tokens, publicMetrics: config.api.public_metrics, metrics, logger },
  );
  const server = startApiServer(parseListenAddress(config.api.listen)!, handler);
  const apiAddress = formatListenAddress(server.address);
  await atomicWriteFile(paths.apiAddress, apiAddress + "\n").catch((err) =>
    logger.warn("api address file not written (loam status needs api.listen)", {
      path: paths.apiAddress,
      error: err.message,
    })
  );
  logger.info("api listening", { addr: apiAddress });

  // What adapters left running for deployments no longer active is removed while the mesh
  // starts (it spawns the container CLIs), and before any deployment is resumed or started.
  const activeInstances = records.list().filter((r) => r.state === "active" && r.instance_id)
    .map((r) => r.instance_id!);
  const reconciled = Promise.all(
    [...adapters.values()].map((adapter) =>
      adapter.reconcile?.(activeInstances).catch((err) =>
        logger.warn("reconcile failed", { adapter: adapter.kind, error: err })
      )
    ),
  );
  const containerRuntimes = await detectContainerRuntimes();
  const executionProviders = await loadableProviders(
    hardware.gpus.some((g) => g.kind === "nvidia"),
  );
  try {
    late.mesh = await Mesh.start({
      config: config.mesh,
      identity,
      store,
      registry: metrics.registry,
      logger: logger.child({ component: "mesh" }),
      fleetKey,
      buildAdvert: () =>
        buildAdvert({
          config,
          peerId: identity.peerId,
          hardware,
          dataDir: paths.root,
          store,
          containerRuntimes,
          executionProviders,
          instances: () => instances().map((i) => i.instance_id),
        }),
    });
  } catch (err) {
    await server.shutdown();
    await Deno.remove(paths.apiAddress).catch(() => {});
    throw err;
  }
  const mesh = late.mesh;
  late.fetcher = new BlobFetcher(
    store,
    settings,
    logger.child({ component: "fetch" }),
    mesh.blobSource,
  );
  const facts = () =>
    nodeFacts({
      config,
      peerId: identity.peerId,
      hardware,
      dataDir: paths.root,
      containerRuntimes,
      executionProviders,
      adapterKinds: [...adapters.keys()],
    });
  late.facts = facts;
  /** The one-line state systemd shows (`systemctl status loam`). */
  const summary = () => {
    const states = records.list().map((r) => r.state);
    const active = states.filter((s) => s === "active").length;
    const failed = states.filter((s) => s === "failed").length;
    return `ready: api ${apiAddress}, ${mesh.node.getPeers().length} peers, ` +
      `${active} active / ${failed} failed deployments`;
  };
  const engine = new DeploymentEngine({
    records,
    seen,
    fetcher: late.fetcher,
    adapters,
    nodeId: config.node.id,
    facts,
    publishStatus: (status) => {
      notifier.status(summary()).catch(() => {});
      if (HOLDINGS_CHANGED.includes(status.state)) mesh.advertiseSoon();
      mesh.publishStatus(status).catch((err) =>
        logger.debug("status not published", { error: err })
      );
    },
    maxConcurrent: config.deploy.max_concurrent,
    directiveTtlHours: config.deploy.directive_ttl_hours,
    logger: logger.child({ component: "deploy" }),
  });
  late.engine = engine;
  const intake = new DirectiveIntake(archive, engine, logger.child({ component: "deploy" }));
  mesh.messaging.on("directive", (payload, _signer, envelope) => {
    void intake.take({ kind: "directive", payload, envelope }, "gossip");
  });
  mesh.messaging.on("rollback", (payload, _signer, envelope) => {
    void intake.take({ kind: "rollback", payload, envelope }, "gossip");
  });
  await reconciled;
  await engine.resume();
  await mesh.startDirectivesSync(archive, (orders) => intake.takeAll(orders, "sync"));
  // after a (re)connection, once gossip has formed its mesh, repeat the current statuses
  let republish: ReturnType<typeof setTimeout> | undefined;
  mesh.node.addEventListener("peer:connect", () => {
    clearTimeout(republish);
    republish = setTimeout(() => engine.republish(), REPUBLISH_DELAY_MS);
  });
  logger.info("mesh listening", {
    network: config.mesh.network,
    addrs: mesh.listenAddrs(),
    bootstrap: config.mesh.bootstrap.length,
  });

  ready = true;
  await notifier.ready(summary());
  logger.info("agent ready", {
    node_id: config.node.id,
    version: VERSION,
    data_dir: paths.root,
    gpus: hardware.gpus.length,
  });

  return {
    apiAddress,
    async stop() {
      ready = false;
      await notifier.stopping();
      logger.info("shutting down", { drain_seconds: config.api.drain_seconds });
      if (config.api.drain_seconds > 0) {
        await new Promise((r) => setTimeout(r, config.api.drain_seconds * 1000));
      }
      await late.engine?.stop(); // work in progress stops without a change of state: it resumes
      late.fetcher?.close(); // in-flight downloads end now (kept for resume), so requests finish
      clearTimeout(republish);
      await server.shutdown();
      await Promise.all([...adapters.values()].map((adapter) => adapter.stopAll?.()));
      await late.mesh?.stop();
      await Deno.remove(paths.apiAddress).catch(() => {});
      logger.info("stopped");
    },
  };
}
