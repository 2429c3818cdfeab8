import {
  BlobFetcher,
  type BlobRequest,
  type FetchedBlob,
  type FetchProgress,
} from "../blobs/fetcher.ts";
import { type CancelResult, DeploymentEngine, type SubmitResult } from "../deploy/engine.ts";
import { DirectiveIntake } from "../deploy/directive_intake.ts";
import { nodeFacts } from "../deploy/node_facts.ts";
import { type NodeFacts, unmetHardware } from "../deploy/targeting.ts";
import type { HardwareRequirements } from "../protocol/hardware_requirements.ts";
import { modelsReport, type ModelView } from "../deploy/models.ts";
import type { DeploymentRecord } from "../deploy/records.ts";
import type { DeploymentDirective } from "../protocol/directive.ts";
import type { DeploymentState, DeploymentStatus } from "../protocol/status.ts";
import type { HostRuntimes } from "./runtimes_service.ts";
import type { MeshService } from "./mesh_service.ts";
import type { Service } from "./service.ts";
import type { AgentCore } from "./core.ts";

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

/** What the deploy service is built from. */
export interface DeployServiceOptions extends AgentCore {
  mesh: MeshService;
  /** Called after each status is published (the systemd status line follows it). */
  onStatus: (status: DeploymentStatus) => void;
}

/**
 * Deployments: the blob fetcher (peers first), the deployment engine, and the intake of signed
 * orders from gossip and from peers' archives. Started last: once it runs, the deployments that
 * were in progress resume and new orders are acted on.
 */
export class DeployService implements Service {
  readonly name = "deploy";
  readonly #o: DeployServiceOptions;
  #fetcher?: BlobFetcher;
  #engine?: DeploymentEngine;
  #host?: HostRuntimes;
  #republish?: ReturnType<typeof setTimeout>;
  #unsubscribe?: () => void;

  constructor(options: DeployServiceOptions) {
    this.#o = options;
  }

  async start(): Promise<void> {
    const { config, store, runtimes } = this.#o;
    const mesh = this.#o.mesh.mesh;
    const logger = this.#o.logger.child({ component: "deploy" });
    this.#host = await runtimes.whenDetected();
    this.#fetcher = new BlobFetcher(
      store.blobs,
      store.fetchSettings,
      this.#o.logger.child({ component: "fetch" }),
      mesh.blobSource,
    );
    const engine = new DeploymentEngine({
      records: store.records,
      seen: store.seen,
      fetcher: this.#fetcher,
      adapters: runtimes.adapters,
      nodeId: config.node.id,
      facts: () => this.#facts(),
      publishStatus: (status) => {
        this.#o.onStatus(status);
        if (HOLDINGS_CHANGED.includes(status.state)) mesh.advertiseSoon();
        mesh.publishStatus(status).catch((err) =>
          logger.debug("status not published", { error: err })
        );
      },
      maxConcurrent: config.deploy.max_concurrent,
      directiveTtlHours: config.deploy.directive_ttl_hours,
      logger,
    });
    this.#engine = engine;
    const intake = new DirectiveIntake(store.archive, engine, logger);
    mesh.messaging.on("directive", (payload, _signer, envelope) => {
      void intake.take({ kind: "directive", payload, envelope }, "gossip");
    });
    mesh.messaging.on("rollback", (payload, _signer, envelope) => {
      void intake.take({ kind: "rollback", payload, envelope }, "gossip");
    });
    await runtimes.whenReconciled();
    await engine.resume();
    await mesh.startDirectivesSync(store.archive, (orders) => intake.takeAll(orders, "sync"));
    // after a (re)connection, once gossip has formed its mesh, repeat the current statuses
    this.#unsubscribe = mesh.onPeerConnect(() => {
      clearTimeout(this.#republish);
      this.#republish = setTimeout(() => engine.republish(), REPUBLISH_DELAY_MS);
    });
  }

  /**
   * Work in progress stops without a change of state (it resumes at the next start), and
   * in-flight downloads end now (kept for resume), so API requests waiting on them finish.
   */
  async stop(): Promise<void> {
    this.#unsubscribe?.();
    clearTimeout(this.#republish);
    await this.#engine?.stop();
    this.#fetcher?.close();
  }

  /** Whether this node meets every one of `requirements`; false until the host is probed. */
  meets(requirements: HardwareRequirements[]): boolean {
    if (!this.#host) return false;
    const facts = this.#facts();
    return requirements.every((req) => unmetHardware(req, facts) === undefined);
  }

  #facts(): NodeFacts {
    const host = this.#host!;
    return nodeFacts({
      config: this.#o.config,
      peerId: this.#o.identity.identity.peerId,
      hardware: host.hardware,
      dataDir: this.#o.paths.root,
      containerRuntimes: host.containerRuntimes,
      executionProviders: host.executionProviders,
      adapterKinds: host.adapterKinds,
    });
  }

  #ready(): DeploymentEngine {
    if (!this.#engine) throw new Error("the agent is not ready for deployments yet");
    return this.#engine;
  }

  /** Hands a directive from the local API to the engine. */
  submit(directive: DeploymentDirective): Promise<SubmitResult> {
    return this.#ready().submit(directive, "api");
  }

  /** Activates a deployment waiting in `ready`; undefined when there is none with that id. */
  activate(id: string): Promise<DeploymentRecord | undefined> {
    return this.#ready().activateReady(id);
  }

  /** Stops a deployment (rolled_back) or removes a final one's record. */
  cancel(id: string): Promise<CancelResult | undefined> {
    return this.#ready().cancel(id);
  }

  /** A supervised instance broke for good: its deployment fails. */
  instanceFailed(instanceId: string, reason: string): void {
    this.#engine?.instanceFailed(instanceId, reason);
  }

  /** Makes a blob present (peers, then URLs) and advertises it. */
  async fetchBlob(request: BlobRequest): Promise<FetchedBlob> {
    if (!this.#fetcher) throw new Error("the agent is not ready to fetch yet");
    const blob = await this.#fetcher.ensure(request);
    this.#o.mesh.running?.advertiseSoon();
    return blob;
  }

  /** Downloads running now. */
  downloads(): FetchProgress[] {
    return this.#fetcher?.downloads() ?? [];
  }

  /** Bytes received from HTTP and from peers since start; undefined before the fetcher runs. */
  receivedBytes(): { http: number; peer: number } | undefined {
    return this.#fetcher?.receivedBytes();
  }

  /** ONNX and GGUF models among the deployments; none until the deploy service runs. */
  models(): ModelView[] {
    return this.#host ? modelsReport(this.#o.store.records.list(), this.#facts()) : [];
  }
}
