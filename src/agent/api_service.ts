import { formatListenAddress, parseListenAddress } from "../config/listen_address.ts";
import type { ApiMetrics } from "../api/metrics.ts";
import { registerStateMetrics } from "../api/state_metrics.ts";
import { registerProcessMetrics } from "../api/process_metrics.ts";
import { createRouter } from "../api/router.ts";
import { type ApiDeps, apiRoutes, peerJobRoutes } from "../api/routes.ts";
import type { TokenRecord } from "../api/tokens.ts";
import { ConsoleCodes } from "../api/console_codes.ts";
import { ollamaRoutes } from "../api/routes/ollama.ts";
import { type ApiServer, startApiServer } from "../api/server.ts";
import type { StatusReport } from "../api/status.ts";
import { blobsReport } from "../deploy/references.ts";
import { probeLiveHardware } from "../system/hardware.ts";
import { atomicWriteFile } from "../system/atomic_write.ts";
import { VERSION } from "../version.ts";
import type { MeshService } from "./mesh_service.ts";
import type { DeployService } from "./deploy_service.ts";
import type { RegistryService } from "./registry_service.ts";
import { entryRequirements } from "../registry/entry_requirements.ts";
import type { Service } from "./service.ts";
import type { AgentCore } from "./core.ts";

/** What the API service is built from: the services whose state it shows. */
export interface ApiServiceOptions extends AgentCore {
  mesh: MeshService;
  deploy: DeployService;
  registry: RegistryService;
  metrics: ApiMetrics;
  /** When the agent started (ms since the epoch), for uptime. */
  startedAt: number;
}

/**
 * The local HTTP API. Started before the mesh and the deployments, so `/livez` answers (and
 * `/readyz` says 503) while they come up; the bound address goes to `<data>/api/address` for
 * `loam status`.
 */
export class ApiService implements Service {
  readonly name = "api";
  readonly #o: ApiServiceOptions;
  #server?: ApiServer;
  /** The Ollama-only listener (`api.ollama_listen`), when set. */
  #ollama?: ApiServer;
  /** The routes a fleet peer's job runs on (no token: the peer signed its offer). */
  #peerRouter?: (req: Request) => Promise<Response>;
  /** The peer each in-process job request was sent by. */
  readonly #peerCallers = new WeakMap<Request, TokenRecord>();
  #address = "";
  #ready = false;
  readonly #closing = new AbortController();
  /** Login codes `loam console` asked for, waiting for the page to use them. */
  readonly #consoleCodes = new ConsoleCodes();

  constructor(options: ApiServiceOptions) {
    this.#o = options;
  }

  /**
   * @throws a UserError naming `api.listen` or `api.ollama_listen` when the address cannot be
   * bound (the other listener is closed again first).
   */
  async start(): Promise<void> {
    const { config, paths, identity, store, runtimes, mesh, deploy, metrics, logger } = this.#o;
    const tokens = identity.tokens;
    registerStateMetrics(metrics.registry, {
      deploymentStates: () => store.records.list().map((r) => r.state),
      blobBytes: async () => (await store.blobs.list()).reduce((sum, b) => sum + b.size_bytes, 0),
      fetchedBytes: () => deploy.receivedBytes(),
    });
    registerProcessMetrics(metrics.registry, this.#o.startedAt, runtimes);
    const deps: ApiDeps = {
      isReady: () => this.#ready,
      status: () => this.#status(),
      peers: () => mesh.running?.peers.list() ?? [],
      fleet: () => mesh.running?.fleet() ?? [],
      consoleCodes: this.#consoleCodes,
      registryStore: () => this.#o.registry.store,
      fitsHere: (entry) => deploy.meets(entryRequirements(entry)),
      blobs: async () => ({
        ...await blobsReport(store.blobs, paths.deployments),
        downloads: deploy.downloads(),
      }),
      fetchBlob: (request) => deploy.fetchBlob(request),
      submitDirective: (directive) => deploy.submit(directive),
      deployments: () => store.records.list(),
      activateDeployment: (id) => deploy.activate(id),
      cancelDeployment: (id) => deploy.cancel(id),
      instances: () => runtimes.instances(),
      usage: () => runtimes.usage(),
      instanceLogs: (id, lines) => runtimes.logs(id, lines),
      closing: this.#closing.signal,
      infer: (id, call) => runtimes.infer(id, call),
      llm: (nameOrId) => runtimes.llm(nameOrId),
      model: (nameOrId) => runtimes.model(nameOrId),
      models: () => deploy.models(),
      meshModels: () => mesh.running?.peers.models() ?? [],
      job: (id) => mesh.running?.jobs.get(id),
      routing: {
        forward: (job) => mesh.running?.inference.forward(job) ?? Promise.resolve(undefined),
        ranLocally: () => mesh.running?.inference.ranLocally(),
      },
      registry: metrics.registry,
      tokens,
      maxBodyBytes: config.api.max_body_bytes,
      maxInputBytes: config.jobs.max_input_bytes,
    };
    const routerDeps = { tokens, publicMetrics: config.api.public_metrics, metrics, logger };
    this.#peerRouter = createRouter(peerJobRoutes(deps), {
      ...routerDeps,
      caller: (req) => this.#peerCallers.get(req),
    });
    this.#server = startApiServer(
      parseListenAddress(config.api.listen)!,
      createRouter(apiRoutes(deps), routerDeps),
    );
    this.#address = formatListenAddress(this.#server.address);
    await atomicWriteFile(paths.apiAddress, this.#address + "\n").catch((err) =>
      logger.warn("api address file not written (loam status needs api.listen)", {
        path: paths.apiAddress,
        error: err.message,
      })
    );
    logger.info("api listening", { addr: this.#address });
    const ollama = config.api.ollama_listen;
    if (ollama !== undefined) {
      const anonymousScopes = config.api.ollama_scopes;
      try {
        this.#ollama = startApiServer(
          parseListenAddress(ollama)!,
          createRouter(ollamaRoutes(deps), { ...routerDeps, anonymousScopes }),
          "api.ollama_listen",
        );
      } catch (err) {
        await this.stop(); // a service that fails to start is not stopped by the root
        throw err;
      }
      logger.info("ollama api listening", {
        addr: formatListenAddress(this.#ollama.address),
        without_token: anonymousScopes,
      });
    }
  }

  /** Ends followed logs, waits for the requests in flight, then removes the address file. */
  async stop(): Promise<void> {
    this.#closing.abort();
    await Promise.all([this.#server?.shutdown(), this.#ollama?.shutdown()]);
    await Deno.remove(this.#o.paths.apiAddress).catch(() => {});
  }

  /**
   * Runs a job a fleet peer sent (`/loam/infer/1`) on the local inference routes, as the caller
   * `peer:<peer id>` with `infer:run`: its jobs share one turn in each fair queue.
   */
  runForPeer(req: Request, peer: string): Promise<Response> {
    if (!this.#peerRouter) throw new Error("the API is not started yet");
    this.#peerCallers.set(req, {
      name: `peer:${peer}`,
      scopes: ["infer:run"],
      sha256: "",
      created_at: "",
    });
    return this.#peerRouter(req);
  }

  /** The bound address, e.g. `127.0.0.1:7411`. */
  get address(): string {
    return this.#address;
  }

  /** Readiness (`/readyz`): on once every service runs, off when shutdown begins. */
  setReady(ready: boolean): void {
    this.#ready = ready;
  }

  #status(): StatusReport {
    const { config, paths, identity, runtimes, startedAt } = this.#o;
    const mesh = this.#o.mesh.running;
    const fleetKey = identity.fleetKey;
    const hardware = runtimes.hardware;
    return {
      node_id: config.node.id,
      peer_id: identity.identity.peerId,
      version: VERSION,
      uptime_s: Math.floor((Date.now() - startedAt) / 1000),
      started_at: new Date(startedAt).toISOString(),
      arch: hardware.arch,
      os: hardware.os,
      formation_id: config.node.formation_id ?? null,
      capabilities: config.node.capabilities,
      data_dir: paths.root,
      api: this.#address,
      ready: this.#ready,
      network: config.mesh.network,
      peer_count: mesh?.peerCount() ?? 0,
      listen_addrs: mesh?.listenAddrs() ?? [],
      identity_problems: mesh?.identityProblems() ?? [],
      mesh: { open: fleetKey === undefined, fleet_key: fleetKey?.fingerprint ?? null },
      hardware: probeLiveHardware(hardware, paths.root),
    };
  }
}
