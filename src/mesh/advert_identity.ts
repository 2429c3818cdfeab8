import type { Advert } from "../protocol/advert.ts";
import { COPIED_KEY_REMEDY } from "./peer_id_clash.ts";
import type { IdentityProblems } from "./identity_problems.ts";

/**
 * Right after a restart, copies of this node's adverts from before it (signed with its key, or
 * with its old key after a key change) can still circulate for a few gossip heartbeats. Adverts
 * sent before this node started are not taken as evidence during this long.
 */
const ECHO_WINDOW_MS = 30_000;

/**
 * Reads what received adverts say about this node's identity. gossipsub drops copies of the
 * messages a node published itself (its seen cache), so an advert signed with this node's key
 * that arrives anyway was sent by another process holding the key (it reaches this node when
 * the mesh has a path through two other nodes: a relay never forwards to the peer id a message
 * came from). An advert from another peer id with this node's node id means two nodes share one
 * `node.id`: both count as one in deployment reports. Both are reported to the
 * {@link IdentityProblems}; a peer that later advertises another node id is cleared.
 */
export class AdvertIdentity {
  readonly #peerId: string;
  readonly #problems: IdentityProblems;
  readonly #startedAt: number;
  #nodeId?: string;

  constructor(peerId: string, problems: IdentityProblems, startedAt = Date.now()) {
    this.#peerId = peerId;
    this.#problems = problems;
    this.#startedAt = startedAt;
  }

  /** This node's own advert, as published: its node id is the one others must not use. */
  sent(advert: Advert): void {
    this.#nodeId = advert.node_id;
  }

  /**
   * Checks an accepted advert and its signer; false when the advert is not another node's (it
   * is signed with this node's key) and must not enter the peer table.
   */
  received(advert: Advert, signer: string): boolean {
    const ours = signer === this.#peerId;
    const stale = Date.parse(advert.sent_at) < this.#startedAt &&
      Date.now() - this.#startedAt < ECHO_WINDOW_MS;
    if (stale) return !ours;
    if (ours) {
      this.#problems.report(`gossip:${advert.node_id}`, {
        kind: "peer_id_clash",
        peer_id: this.#peerId,
        node_id: advert.node_id,
        addresses: [],
        detected_by: "gossip",
        message: `this node's peer id ${this.#peerId} is also used by another node (its advert, ` +
          `node id "${advert.node_id}", came through the mesh): ${COPIED_KEY_REMEDY}`,
      });
      return false;
    }
    const key = `node:${signer}`;
    if (this.#nodeId === undefined || advert.node_id !== this.#nodeId) {
      this.#problems.resolve(key);
      return true;
    }
    this.#problems.report(key, {
      kind: "node_id_clash",
      peer_id: signer,
      node_id: advert.node_id,
      addresses: [],
      detected_by: "advert",
      message: `node id "${advert.node_id}" of this node (peer id ${this.#peerId}) is also used ` +
        `by peer ${signer}: deployment reports count the two as one node; give one of them its ` +
        `own node.id (--node-id, LOAM_NODE_ID or node.id in loam.toml) and restart it`,
    });
    return true;
  }
}
