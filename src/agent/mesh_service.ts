import type { Registry } from "prom-client";
import { Mesh } from "../mesh/mesh.ts";
import { buildAdvert } from "../mesh/adverts.ts";
import type { Service } from "./service.ts";
import type { AgentCore } from "./core.ts";
import type { RegistryService } from "./registry_service.ts";

/** What the mesh service is built from. */
export interface MeshServiceOptions extends AgentCore {
  registry: Registry;
  /** The model and agent registry, which the mesh replicates. */
  registryService: RegistryService;
  /** Runs a job a peer sent through the local inference routes (the API's), as caller `peer`. */
  runJob(req: Request, peer: string): Promise<Response>;
}

/**
 * The libp2p mesh, started once the runtimes are probed (the first advert says what this node
 * can run). Started after the API, so `/livez` answers while it comes up; until then
 * {@link running} is undefined and the API shows no peers.
 */
export class MeshService implements Service {
  readonly name = "mesh";
  readonly #o: MeshServiceOptions;
  #mesh?: Mesh;

  constructor(options: MeshServiceOptions) {
    this.#o = options;
  }

  /** @throws a UserError naming `mesh.listen` when the address cannot be used. */
  async start(): Promise<void> {
    const { config, paths, identity, store, runtimes } = this.#o;
    const host = await runtimes.whenDetected();
    const peerId = identity.identity.peerId;
    const acceptRemote = config.inference.accept_remote ?? identity.fleetKey !== undefined;
    this.#mesh = await Mesh.start({
      config: config.mesh,
      identity: identity.identity,
      store: store.blobs,
      registry: this.#o.registry,
      logger: this.#o.logger.child({ component: "mesh" }),
      fleetKey: identity.fleetKey,
      buildAdvert: () =>
        buildAdvert({
          config,
          peerId,
          hardware: host.hardware,
          dataDir: paths.root,
          store: store.blobs,
          containerRuntimes: host.containerRuntimes,
          executionProviders: host.executionProviders,
          instances: () => runtimes.instances().map((i) => i.instance_id),
          models: () => acceptRemote ? runtimes.advertisedModels() : [],
        }),
      inference: {
        acceptRemote,
        maxInputBytes: config.jobs.max_input_bytes,
        timeoutMs: config.jobs.timeout_seconds * 1000,
        localModel: (name) => runtimes.model(name),
        runJob: this.#o.runJob,
      },
    });
    await this.#mesh.startRegistry(this.#o.registryService.store);
    this.#o.logger.info("mesh listening", {
      network: config.mesh.network,
      addrs: this.#mesh.listenAddrs(),
      bootstrap: config.mesh.bootstrap.length,
      accept_remote: acceptRemote,
    });
  }

  async stop(): Promise<void> {
    await this.#mesh?.stop();
  }

  /** The mesh once started; services started after this one use {@link mesh}. */
  get running(): Mesh | undefined {
    return this.#mesh;
  }

  /** The started mesh. */
  get mesh(): Mesh {
    if (!this.#mesh) throw new Error("the mesh is not started yet");
    return this.#mesh;
  }
}
