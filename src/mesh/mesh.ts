/**
 * @module
 * The libp2p mesh: the node (node.ts), signed gossip (messaging.ts), peers and adverts, the
 * blob and directives-sync stream protocols, and the identity checks. Only this folder holds
 * the libp2p node; the rest of the agent uses {@link Mesh}'s methods.
 */

import { type Multiaddr, multiaddr } from "@multiformats/multiaddr";
import { Counter, Gauge, type Registry } from "prom-client";
import { createMeshNode, type MeshNode } from "./node.ts";
import { redialBootstrap } from "./bootstrap_redial.ts";
import type { FleetKey } from "./fleet_key.ts";
import { fleetKeyProtector, MismatchReporter } from "./fleet_guard.ts";
import { PeerAllowlist } from "./peer_allowlist.ts";
import { ConnectionsPerIp } from "./connections_per_ip.ts";
import { combineGaters } from "./combined_gater.ts";
import { MeshMessaging } from "./messaging.ts";
import { PeerTable } from "./peers.ts";
import { serveBlobs } from "./blob_protocol.ts";
import { DirectivesSync, type SyncLedger } from "./directives_sync.ts";
import type { SignedOrder } from "../protocol/directives_sync.ts";
import type { DeploymentStatus } from "../protocol/status.ts";
import type { RegistryDocument } from "../protocol/registry_entry.ts";
import { StatusCache } from "./status_cache.ts";
import { type FleetNode, FleetView } from "./fleet_view.ts";
import { type RegistryLedger, RegistrySync } from "./registry_sync.ts";
import { catchUpStatuses, serveStatusQueries } from "./status_query.ts";
import { blobCid, MeshBlobSource } from "./blob_source.ts";
import { type IdentityProblem, IdentityProblems } from "./identity_problems.ts";
import { PeerIdClash } from "./peer_id_clash.ts";
import { PeerIdWitness } from "./peer_id_witness.ts";
import { AdvertIdentity } from "./advert_identity.ts";
import type { Identity } from "./identity.ts";
import { JobLog } from "./job_log.ts";
import { InferRouter } from "./infer_router.ts";
import { type LocalModel, serveInfer } from "./infer_executor.ts";
import type { Advert } from "../protocol/advert.ts";
import type { Config } from "../config/schema.ts";
import type { BlobStore } from "../blobs/store.ts";
import type { Logger } from "../system/logger.ts";
import { UserError } from "../system/errors.ts";

/** How often unreachable bootstrap peers are dialled again. */
const REDIAL_INTERVAL_MS = 15_000;
/** New DHT provider records announced per advert cycle (the rest follow in later cycles). */
const PROVIDES_PER_CYCLE = 64;
/** Changes within this window produce one advert. */
const ADVERT_DEBOUNCE_MS = 1000;
/**
 * An advert that reached no peer (a node's first, sent at start) goes out again this long after
 * a peer connects: gossip must learn the peer's subscriptions first.
 */
const ADVERT_AFTER_CONNECT_MS = 2000;

/** What the mesh needs from the agent. */
export interface MeshOptions {
  config: Config["mesh"];
  identity: Identity;
  store: BlobStore;
  registry: Registry;
  logger: Logger;
  /** Builds this node's current advert. */
  buildAdvert(): Promise<Advert>;
  /** The fleet key, if any: only peers holding it can connect, and mDNS defaults to on. */
  fleetKey?: FleetKey;
  /** Jobs routed over the mesh (`/loam/infer/1`), both ways. */
  inference: MeshInferenceOptions;
}

/** The registry as the mesh replicates it: merged into, read for sync, told of what it signs. */
export interface RegistryReplica extends RegistryLedger {
  mergeOpened(doc: RegistryDocument, signer: string, envelope: string): Promise<unknown>;
  onSigned(listener: (envelope: Uint8Array) => void): void;
}

/** How this node sends jobs to peers and runs theirs. */
export interface MeshInferenceOptions {
  /** `inference.accept_remote`, resolved: run jobs peers send. */
  acceptRemote: boolean;
  /** `jobs.max_input_bytes`. */
  maxInputBytes: number;
  /** `jobs.timeout_seconds`, in ms. */
  timeoutMs: number;
  /** The loaded model called `name` here. */
  localModel(name: string): LocalModel | "loading" | undefined;
  /** Runs a peer's job through the local inference routes, as caller `peer`. */
  runJob(req: Request, peer: string): Promise<Response>;
}

/**
 * The running mesh: libp2p node, signed gossip, peer table, blob serving and fetching, the
 * adverts (every `advert_interval`, soon after a change, and again once a peer connects when
 * the last one reached nobody), DHT announcements of new blobs (every `advert_interval`), and
 * re-dialling of bootstrap peers after they drop, and the identity problems noticed on the way (a
 * second holder of this node's key, a second node with its node id: see
 * {@link identityProblems}).
 */
export class Mesh {
  readonly #node: MeshNode;
  readonly messaging: MeshMessaging;
  readonly peers: PeerTable;
  readonly blobSource: MeshBlobSource;
  /** Sends jobs for models this node does not run (or runs with a full queue) to peers. */
  readonly inference: InferRouter;
  /** Jobs forwarded to peers and served for them (`GET /v1/jobs/{id}`). */
  readonly jobs = new JobLog();
  readonly #jobsCounter: Counter<"where">;
  readonly #statuses = new StatusCache();
  readonly #fleet: FleetView;
  readonly #options: MeshOptions;
  readonly #problems: IdentityProblems;
  readonly #clash: PeerIdClash;
  readonly #witness: PeerIdWitness;
  readonly #advertIdentity: AdvertIdentity;
  readonly #timers: ReturnType<typeof setInterval>[] = [];
  readonly #provided = new Set<string>();
  #debounce?: ReturnType<typeof setTimeout>;
  /** The last advert reached no peer. */
  #unheard = false;
  #stopped = false;
  #sync?: DirectivesSync;
  #registrySync?: RegistrySync;

  private constructor(
    node: MeshNode,
    options: MeshOptions,
    problems: IdentityProblems,
    clash: PeerIdClash,
  ) {
    this.#node = node;
    this.#options = options;
    this.#problems = problems;
    this.#clash = clash;
    this.#witness = new PeerIdWitness(node, problems);
    this.#advertIdentity = new AdvertIdentity(options.identity.peerId, problems);
    // a node that missed three adverts in a row is offline
    this.#fleet = new FleetView(3 * options.config.advert_interval * 1000);
    const logger = options.logger;
    this.messaging = new MeshMessaging({
      node,
      network: options.config.network,
      trustedIssuers: options.config.trusted_issuers,
      maxMessageBytes: options.config.max_message_bytes,
      privateKey: options.identity.privateKey,
      registry: options.registry,
      logger,
      gossipPerSecond: options.config.limits.gossip_per_second,
    });
    this.peers = new PeerTable(node, logger);
    this.blobSource = new MeshBlobSource(node, this.peers);
    this.#jobsCounter = new Counter({
      name: "loam_fleet_jobs_total",
      help: "Inference jobs on routable routes: run here (local), sent to a peer (forwarded), " +
        "run for a peer (served).",
      labelNames: ["where"],
      registers: [options.registry],
    });
    this.inference = new InferRouter({
      node,
      peers: this.peers,
      privateKey: options.identity.privateKey,
      timeoutMs: options.inference.timeoutMs,
      jobs: this.jobs,
      counter: this.#jobsCounter,
      logger,
    });
    this.messaging.on("advert", (advert, signer) => {
      if (!this.#advertIdentity.received(advert, signer)) return;
      this.peers.recordAdvert(advert);
      this.#fleet.recordAdvert(advert);
      logger.debug("advert received", { peer: advert.peer_id, node_id: advert.node_id });
    });
    this.messaging.on("status", (status, signer, envelope) => {
      this.#statuses.record(status, signer, envelope);
      this.#fleet.recordStatus(status, signer);
    });
    node.addEventListener("peer:connect", (evt) => {
      logger.info("peer connected", { peer: evt.detail.toString() });
      if (this.#unheard) this.#advertiseIn(ADVERT_AFTER_CONNECT_MS);
    });
    node.addEventListener(
      "peer:disconnect",
      (evt) => logger.info("peer disconnected", { peer: evt.detail.toString() }),
    );
    new Gauge({
      name: "loam_mesh_peers",
      help: "Connected mesh peers.",
      registers: [options.registry],
      collect() {
        this.set(node.getPeers().length);
      },
    });
  }

  /** Starts the node and every loop; a listen address that cannot be used is a {@link UserError}. */
  static async start(options: MeshOptions): Promise<Mesh> {
    const problems = new IdentityProblems(options.logger);
    const clash = new PeerIdClash(options.identity.peerId, problems);
    let node: MeshNode;
    try {
      node = await createMeshNode({
        privateKey: options.identity.privateKey,
        listen: options.config.listen,
        bootstrap: options.config.bootstrap,
        network: options.config.network,
        mdns: options.config.mdns ?? options.fleetKey !== undefined,
        maxMessageBytes: options.config.max_message_bytes,
        connectionGater: combineGaters(
          clash.gater,
          new PeerAllowlist(
            options.config.allowed_peers,
            options.config.trusted_issuers,
            options.logger,
            options.registry,
          ).gater(),
          new ConnectionsPerIp(
            options.config.limits.connections_per_ip,
            options.logger,
            options.registry,
          ).gater,
        ),
        connectionProtector: options.fleetKey &&
          fleetKeyProtector(
            options.fleetKey.psk,
            new MismatchReporter(options.logger, options.registry).report,
          ),
      });
    } catch (err) {
      // the node says what is wrong with the address in one line; name the setting before it
      if (err instanceof UserError) {
        throw new UserError(`mesh.listen = "${options.config.listen}": ${err.message}`);
      }
      throw new UserError(
        `mesh.listen = "${options.config.listen}": cannot start the mesh: ${
          (err as Error).message
        }`,
      );
    }
    const mesh = new Mesh(node, options, problems, clash);
    await serveStatusQueries(node, mesh.#statuses, options.logger);
    await serveBlobs(node, options.store, options.registry, options.logger, {
      maxStreamsPerPeer: options.config.limits.blob_streams_per_peer,
    });
    await serveInfer({
      ...options.inference,
      node,
      privateKey: options.identity.privateKey,
      jobs: mesh.jobs,
      counter: mesh.#jobsCounter,
      logger: options.logger,
    });
    mesh.#timers.push(
      setInterval(() => void mesh.#cycle(), options.config.advert_interval * 1000),
    );
    mesh.#timers.push(setInterval(() => void mesh.#redialBootstrap(), REDIAL_INTERVAL_MS));
    void mesh.#cycle();
    void mesh.#probeOwnBootstrap();
    return mesh;
  }

  /** Every node heard from (this one first), for `GET /v1/fleet`. */
  fleet(): FleetNode[] {
    const connected = new Set(this.#node.getPeers().map((p) => p.toString()));
    return this.#fleet.nodes(this.#node.peerId.toString(), connected);
  }

  /** How many peers are connected now. */
  peerCount(): number {
    return this.#node.getPeers().length;
  }

  /**
   * Calls `listener` each time a peer connects (a first connection or a reconnection after a
   * partition), so callers never hold the libp2p node; returns the function that stops it.
   */
  onPeerConnect(listener: (peerId: string) => void): () => void {
    const handler = (evt: CustomEvent<{ toString(): string }>) => listener(evt.detail.toString());
    this.#node.addEventListener("peer:connect", handler);
    return () => this.#node.removeEventListener("peer:connect", handler);
  }

  /** The addresses other nodes can dial, each ending in /p2p/<peer id>. */
  listenAddrs(): string[] {
    return this.#node.getMultiaddrs().map((a) => a.toString());
  }

  /**
   * Signs and publishes this node's status of a deployment, and keeps it for command posts that
   * ask later (`loam deploy --watch-only`); resolves with how many peers it was sent to.
   */
  async publishStatus(status: DeploymentStatus): Promise<number> {
    const data = await this.messaging.seal("status", status);
    this.#statuses.record(status, this.#node.peerId.toString(), new TextDecoder().decode(data));
    this.#fleet.recordStatus(status, this.#node.peerId.toString());
    return await this.messaging.send("status", data);
  }

  /**
   * Starts handing signed orders to late nodes and taking theirs (`/loam/directives-sync/1`),
   * once the agent can act on what arrives; stopped with the mesh.
   */
  async startDirectivesSync(
    ledger: SyncLedger,
    receive: (orders: SignedOrder[]) => Promise<number>,
  ): Promise<void> {
    this.#sync = await DirectivesSync.start({
      node: this.#node,
      ledger,
      trustedIssuers: this.#options.config.trusted_issuers,
      maxMessageBytes: this.#options.config.max_message_bytes,
      receive,
      received: (peer, ids) =>
        void catchUpStatuses(
          this.#node,
          peer,
          ids,
          this.#statuses,
          this.#options.config.max_message_bytes,
          this.#options.logger,
        ),
      registry: this.#options.registry,
      logger: this.#options.logger,
    });
  }

  /**
   * Replicates the registry: what it signs goes out on `loam/<network>/registry/1`, what arrives
   * there is merged, and `/loam/registry-sync/1` catches up with every peer that connects (and
   * hands on what it gained); stopped with the mesh.
   */
  async startRegistry(replica: RegistryReplica): Promise<void> {
    const logger = this.#options.logger;
    this.messaging.on(
      "registry_entry",
      // verified by the gossip validator already: kept without opening it again
      (doc, signer, envelope) =>
        void replica.mergeOpened(doc, signer, envelope).catch((err) =>
          logger.warn("registry document not kept", { error: err })
        ),
    );
    replica.onSigned((envelope) =>
      void this.messaging.send("registry_entry", envelope).catch((err) =>
        logger.debug("registry document not published", { error: err })
      )
    );
    this.#registrySync = await RegistrySync.start({
      node: this.#node,
      ledger: replica,
      registry: this.#options.registry,
      logger,
    });
  }

  /** Identity problems noticed since start (`identity_problems` in `/v1/status`). */
  identityProblems(): IdentityProblem[] {
    return this.#problems.list();
  }

  /** Something advertised changed (a blob, an instance): send an advert soon. */
  advertiseSoon(): void {
    this.#advertiseIn(ADVERT_DEBOUNCE_MS);
  }

  /** Sends one advert `ms` from now; a later call within that time moves it. */
  #advertiseIn(ms: number): void {
    if (this.#stopped) return;
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => void this.#advertise(), ms);
  }

  /** Sends this node's advert now. */
  async #advertise(): Promise<void> {
    if (this.#stopped) return;
    try {
      const advert = await this.#options.buildAdvert();
      this.#advertIdentity.sent(advert);
      this.#fleet.recordAdvert(advert);
      this.#unheard = await this.messaging.publish("advert", advert) === 0;
    } catch (err) {
      this.#options.logger.warn("advert not sent", { error: err });
    }
  }

  /**
   * The periodic cycle: the advert, then DHT provider records for blobs not yet announced (every
   * held blob goes into the DHT, adverts list at most 10,000), a few per cycle. Only here: a
   * provide right after each deployment's fetch had 20 agents on 2 cores dialling each other at
   * once (20-agent deployment p50 4.3 → 6-8 s).
   */
  async #cycle(): Promise<void> {
    await this.#advertise();
    if (this.#stopped) return;
    try {
      const held = (await this.#options.store.list()).map((b) => b.sha256);
      const fresh = held.filter((hex) => !this.#provided.has(hex)).slice(0, PROVIDES_PER_CYCLE);
      for (const hex of fresh) {
        this.#provided.add(hex);
        this.#node.contentRouting.provide(blobCid(hex), { signal: AbortSignal.timeout(30_000) })
          .catch((err) => {
            this.#provided.delete(hex);
            this.#options.logger.debug("DHT provide failed", { sha256: hex, error: err });
          });
      }
    } catch (err) {
      this.#options.logger.warn("blobs not announced in the DHT", { error: err });
    }
  }

  /** Bootstrap entries naming this node's own peer id: dialling them is probing for a clone. */
  #ownBootstrap(): Multiaddr[] {
    const own = this.#node.peerId.toString();
    return this.#options.config.bootstrap.map((a) => multiaddr(a)).filter((ma) =>
      ma.getComponents().find((c) => c.name === "p2p")?.value === own
    );
  }

  async #probeOwnBootstrap(): Promise<void> {
    for (const ma of this.#ownBootstrap()) {
      if (this.#stopped) return;
      await this.#clash.probe(this.#node, ma);
    }
  }

  async #redialBootstrap(): Promise<void> {
    await this.#probeOwnBootstrap();
    await redialBootstrap(this.#node, this.#options.config.bootstrap, (address, error) => {
      this.#options.logger.debug("bootstrap peer unreachable", { address, error });
    });
  }

  /** Stops loops and the node. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#debounce);
    this.#witness.stop();
    this.#sync?.stop();
    this.#registrySync?.stop();
    for (const timer of this.#timers) clearInterval(timer);
    await this.#node.stop();
  }
}
