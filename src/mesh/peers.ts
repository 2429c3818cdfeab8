import type { MeshNode } from "./node.ts";
import type { Advert, AdvertisedModel } from "../protocol/advert.ts";
import type { Logger } from "../system/logger.ts";

/** A peer as `/v1/peers` shows it. */
export interface PeerView {
  peer_id: string;
  /** False for peers known only from adverts relayed by others. */
  connected: boolean;
  addrs: string[];
  direction: string | null;
  /** Round trip of the last ping, ms; null until one succeeded. */
  latency_ms: number | null;
  /** Summary of the peer's last advert, if one arrived. */
  advert: AdvertSummary | null;
}

/** A model a connected peer serves, as its last advert had it. */
export interface PeerModel {
  peer_id: string;
  node_id: string;
  /** Round trip to the peer, ms (Infinity until measured). */
  rtt: number;
  model: AdvertisedModel;
}

/** The part of an advert worth showing in a peer list. */
export interface AdvertSummary {
  node_id: string;
  formation_id: string | null;
  version: string;
  arch: string;
  gpus: number;
  capabilities: string[];
  container_runtimes: string[];
  blobs: number;
  instances: number;
  received_at: string;
}

const PING_TIMEOUT_MS = 5_000;

/**
 * What this node knows about others: connections (from libp2p), ping latency and each peer's
 * last advert (which also tells who holds which blob). Latency is pinged once on connect; after
 * that it is the round trip libp2p's connection monitor measures every 10 s on each connection
 * (pinging every peer again here doubled the mesh's idle stream traffic).
 */
export class PeerTable {
  readonly #node: MeshNode;
  readonly #logger: Logger;
  readonly #latency = new Map<string, number>();
  readonly #adverts = new Map<string, { advert: Advert; receivedAt: string; blobs: Set<string> }>();

  constructor(node: MeshNode, logger: Logger) {
    this.#node = node;
    this.#logger = logger;
    node.addEventListener("peer:connect", (evt) => void this.#ping(evt.detail.toString()));
    node.addEventListener("peer:disconnect", (evt) => this.#latency.delete(evt.detail.toString()));
  }

  async #ping(peer: string): Promise<void> {
    const id = this.#node.getPeers().find((p) => p.toString() === peer);
    if (!id) return;
    try {
      const rtt = await this.#node.services.ping.ping(id, {
        signal: AbortSignal.timeout(PING_TIMEOUT_MS),
      });
      this.#latency.set(peer, rtt);
    } catch (err) {
      this.#logger.debug("ping failed", { peer, error: err });
    }
  }

  /** Stores a peer's advert (the newest wins). */
  recordAdvert(advert: Advert): void {
    const previous = this.#adverts.get(advert.peer_id);
    if (previous && previous.advert.sent_at > advert.sent_at) return;
    this.#adverts.set(advert.peer_id, {
      advert,
      receivedAt: new Date().toISOString(),
      blobs: new Set(advert.blobs),
    });
  }

  /** Peers whose last advert lists the blob, connected ones first. */
  advertisedHolders(hex: string): string[] {
    const connected = new Set(this.#node.getPeers().map((p) => p.toString()));
    const holders = [...this.#adverts.entries()].filter(([, a]) => a.blobs.has(hex)).map(([id]) =>
      id
    );
    return holders.sort((a, b) => Number(connected.has(b)) - Number(connected.has(a)));
  }

  /**
   * The models connected peers serve: those answering to `nameOrId` (an instance id or one of
   * its names), or all of them. Peers known only from relayed adverts cannot take a job.
   */
  models(nameOrId?: string): PeerModel[] {
    const rtts = new Map<string, number>();
    for (const conn of this.#node.getConnections()) {
      const peer = conn.remotePeer.toString();
      const rtt = conn.rtt ?? this.#latency.get(peer) ?? Infinity;
      rtts.set(peer, Math.min(rtts.get(peer) ?? Infinity, rtt));
    }
    const found: PeerModel[] = [];
    for (const [peer, rtt] of rtts) {
      const advert = this.#adverts.get(peer)?.advert;
      for (const model of advert?.models ?? []) {
        if (
          nameOrId === undefined || model.instance_id === nameOrId ||
          model.names.includes(nameOrId)
        ) {
          found.push({ peer_id: peer, node_id: advert!.node_id, rtt, model });
        }
      }
    }
    return found;
  }

  /**
   * Connected peers (addresses, direction, latency) and peers known only from their adverts
   * (relayed by others), each with its advert summary.
   */
  list(): PeerView[] {
    const byPeer = new Map<string, PeerView>();
    const view = (id: string): PeerView =>
      byPeer.get(id) ?? {
        peer_id: id,
        connected: false,
        addrs: [],
        direction: null,
        latency_ms: this.#latency.get(id) ?? null,
        advert: this.#summary(id),
      };
    for (const conn of this.#node.getConnections()) {
      const id = conn.remotePeer.toString();
      const entry = view(id);
      entry.connected = true;
      entry.direction = conn.direction;
      if (conn.rtt !== undefined) entry.latency_ms = conn.rtt;
      entry.addrs.push(conn.remoteAddr.toString());
      byPeer.set(id, entry);
    }
    for (const id of this.#adverts.keys()) byPeer.set(id, view(id));
    return [...byPeer.values()].sort((a, b) => a.peer_id.localeCompare(b.peer_id));
  }

  #summary(peer: string): AdvertSummary | null {
    const entry = this.#adverts.get(peer);
    if (!entry) return null;
    const a = entry.advert;
    return {
      node_id: a.node_id,
      formation_id: a.formation_id,
      version: a.version,
      arch: a.arch,
      gpus: a.gpus.length,
      capabilities: a.capabilities,
      container_runtimes: a.container_runtimes,
      blobs: a.blobs.length,
      instances: a.instances.length,
      received_at: entry.receivedAt,
    };
  }
}
