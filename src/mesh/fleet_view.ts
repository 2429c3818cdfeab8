/**
 * The fleet as one node sees it: every node whose advert or deployment status reached it (itself
 * included), with when it was last heard from and the state of each deployment there. What the
 * console's fleet view and `GET /v1/fleet` show; memory only, refilled by adverts after a restart.
 * @module
 */
import type { Advert } from "../protocol/advert.ts";
import type { DeploymentStatus } from "../protocol/status.ts";

/** Nodes kept at most (the least recently heard from go first). */
const MAX_NODES = 4096;
/** Deployments kept per node (the least recently reported go first). */
const MAX_DEPLOYMENTS = 256;

/** One deployment's state on one node, as its last status said. */
export interface FleetDeployment {
  directive_id: string;
  state: DeploymentStatus["state"];
  progress_percent: number;
  error_message?: string;
  instance_id?: string;
  reported_at: string;
}

/** One node of the fleet, as `GET /v1/fleet` lists it. */
export interface FleetNode {
  peer_id: string;
  /** From its advert; null for a node heard only through a deployment status. */
  node_id: string | null;
  /** This node. */
  self: boolean;
  /** Connected to this node now. */
  connected: boolean;
  /** Connected, this node, or heard from within the offline window (3 advert intervals). */
  online: boolean;
  /** When an advert or a status of it last arrived. */
  last_seen: string;
  version: string | null;
  arch: string | null;
  os: string | null;
  gpus: Advert["gpus"];
  ram_mb: Advert["ram_mb"] | null;
  disk_mb: Advert["disk_mb"] | null;
  instances: string[];
  deployments: FleetDeployment[];
}

interface Entry {
  lastSeen: number;
  advert?: Advert;
  deployments: Map<string, FleetDeployment>;
}

/** Adverts and statuses by the peer that signed them, bounded, newest first where it matters. */
export class FleetView {
  readonly #nodes = new Map<string, Entry>();
  readonly #offlineAfterMs: number;

  /** `offlineAfterMs`: how long a silent node still counts as online. */
  constructor(offlineAfterMs: number) {
    this.#offlineAfterMs = offlineAfterMs;
  }

  /** Keeps `advert` as its peer's newest (an older one, sent before, is ignored). */
  recordAdvert(advert: Advert, now = Date.now()): void {
    const entry = this.#entry(advert.peer_id, now);
    if (!entry.advert || entry.advert.sent_at <= advert.sent_at) entry.advert = advert;
  }

  /** Keeps `status` as `signer`'s newest report on its deployment. */
  recordStatus(status: DeploymentStatus, signer: string, now = Date.now()): void {
    const { deployments } = this.#entry(signer, now);
    const kept = deployments.get(status.directive_id);
    if (kept && Date.parse(kept.reported_at) > Date.parse(status.reported_at)) return;
    deployments.delete(status.directive_id);
    deployments.set(status.directive_id, {
      directive_id: status.directive_id,
      state: status.state,
      progress_percent: status.progress_percent,
      ...(status.error_message !== undefined ? { error_message: status.error_message } : {}),
      ...(status.instance_id !== undefined ? { instance_id: status.instance_id } : {}),
      reported_at: status.reported_at,
    });
    while (deployments.size > MAX_DEPLOYMENTS) {
      deployments.delete(deployments.keys().next().value!);
    }
  }

  /** Every node heard from: this one first, then by node id (nodes known only by peer id last). */
  nodes(self: string, connected: ReadonlySet<string>, now = Date.now()): FleetNode[] {
    const list = [...this.#nodes.entries()].map(([peer, entry]): FleetNode => {
      const a = entry.advert;
      const isSelf = peer === self;
      const isConnected = connected.has(peer);
      return {
        peer_id: peer,
        node_id: a?.node_id ?? null,
        self: isSelf,
        connected: isConnected,
        online: isSelf || isConnected || now - entry.lastSeen <= this.#offlineAfterMs,
        last_seen: new Date(isSelf ? now : entry.lastSeen).toISOString(),
        version: a?.version ?? null,
        arch: a?.arch ?? null,
        os: a?.os ?? null,
        gpus: a?.gpus ?? [],
        ram_mb: a?.ram_mb ?? null,
        disk_mb: a?.disk_mb ?? null,
        instances: a?.instances ?? [],
        deployments: [...entry.deployments.values()].sort((x, y) =>
          x.directive_id.localeCompare(y.directive_id)
        ),
      };
    });
    return list.sort((x, y) =>
      Number(y.self) - Number(x.self) ||
      Number(x.node_id === null) - Number(y.node_id === null) ||
      (x.node_id ?? "").localeCompare(y.node_id ?? "") || x.peer_id.localeCompare(y.peer_id)
    );
  }

  /** The entry of `peer`, marked heard from at `now` and moved to the newest end. */
  #entry(peer: string, now: number): Entry {
    const entry = this.#nodes.get(peer) ?? { lastSeen: now, deployments: new Map() };
    entry.lastSeen = now;
    this.#nodes.delete(peer);
    this.#nodes.set(peer, entry);
    while (this.#nodes.size > MAX_NODES) this.#nodes.delete(this.#nodes.keys().next().value!);
    return entry;
  }
}
