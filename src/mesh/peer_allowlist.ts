/**
 * `mesh.allowed_peers`: within a fleet, only these peer ids (and the command posts in
 * `mesh.trusted_issuers`, which must reach the mesh to publish) may connect. Enforced by libp2p's
 * connection gater once the remote's key is known, both ways; each refusal is counted and logged
 * (rate-limited per host). An empty list admits every fleet member.
 * @module
 */
import type { ConnectionGater, MultiaddrConnection, PeerId } from "@libp2p/interface";
import { Counter, type Registry } from "prom-client";
import type { Logger } from "../system/logger.ts";
import { RefusalLog } from "./host_rate_limit.ts";

/** Refuses peers that are not listed. */
export class PeerAllowlist {
  /** Undefined when `mesh.allowed_peers` is empty: no restriction. */
  readonly #allowed?: Set<string>;
  readonly #refused: Counter<"direction">;
  readonly #lines: RefusalLog;

  constructor(allowed: string[], trustedIssuers: string[], logger: Logger, registry: Registry) {
    if (allowed.length > 0) this.#allowed = new Set([...allowed, ...trustedIssuers]);
    this.#lines = new RefusalLog(logger);
    this.#refused = new Counter({
      name: "loam_mesh_unlisted_peers_refused_total",
      help: "Mesh connections refused because the peer is not in mesh.allowed_peers.",
      labelNames: ["direction"],
      registers: [registry],
    });
  }

  #denies(
    allowed: Set<string>,
    peer: PeerId,
    maConn: MultiaddrConnection,
    direction: "inbound" | "outbound",
  ): boolean {
    if (allowed.has(peer.toString())) return false;
    this.#refused.inc({ direction });
    this.#lines.warn(maConn.remoteAddr, "refused a peer that is not in mesh.allowed_peers", {
      peer: peer.toString(),
      direction,
    });
    return true;
  }

  /** The gater hooks (none when the list is empty: every fleet member is admitted). */
  gater(): Partial<ConnectionGater> {
    const allowed = this.#allowed;
    if (!allowed) return {};
    return {
      denyDialPeer: (peer) => !allowed.has(peer.toString()),
      denyInboundEncryptedConnection: (peer, maConn) =>
        this.#denies(allowed, peer, maConn, "inbound"),
      denyOutboundEncryptedConnection: (peer, maConn) =>
        this.#denies(allowed, peer, maConn, "outbound"),
    };
  }
}
