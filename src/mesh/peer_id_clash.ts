import type { ConnectionGater, MultiaddrConnection } from "@libp2p/interface";
import { CODE_P2P, type Multiaddr } from "@multiformats/multiaddr";
import type { MeshNode } from "./node.ts";
import type { IdentityProblems } from "./identity_problems.ts";
import { sleep } from "../system/sleep.ts";
import { hostOf } from "./host_rate_limit.ts";

/**
 * After a probe met this node's own key, how long to wait for this node's own listener to report
 * the other end of that handshake (it shows 1-3 ms after the dialling side): when it does, the
 * address was this node itself (a NAT hairpin, an alias), not a second holder of the key.
 */
const LOOPBACK_GRACE_MS = 500;
const PROBE_TIMEOUT_MS = 10_000;

/** What to do about a copied data dir, in one sentence. */
export const COPIED_KEY_REMEDY = "the data dir was copied from another box; delete identity.key " +
  "in the data dir of one of them and restart it (it gets a new peer id; give it its own " +
  "node.id too)";

/**
 * libp2p's upgrader refuses a connection whose authenticated remote peer is this node with
 * `InvalidPeerIdError: Can not dial self` (the noise handshake proved the remote holds this
 * node's private key), on both ends of it.
 */
function isSelfHandshake(err: unknown): boolean {
  return err instanceof Error && err.name === "InvalidPeerIdError" &&
    err.message === "Can not dial self";
}

/**
 * Finds a second process that holds this node's identity key (a data dir copied to another box,
 * typical of golden images). libp2p 3 hides it: dialling a `/p2p/<own id>` address fails at once
 * with "Can not dial self", before any packet, and a clone that bootstraps only from the original
 * sits alone with no warning. Two kinds of evidence are collected here:
 * - a bootstrap address that names this node's own peer id is probed without its `/p2p/` part:
 *   when the handshake there meets this node's own key and this node's listener saw no such
 *   handshake meanwhile, another process at that address holds the key;
 * - the other end of that: an inbound connection whose remote proves this node's key (the
 *   {@link gater}'s hook), while this node was not probing itself.
 */
export class PeerIdClash {
  readonly #peerId: string;
  readonly #problems: IdentityProblems;
  /** Probes in flight, counting their grace time. */
  #probing = 0;
  /** When this node's listener last met its own key (ms since the epoch). */
  #lastInboundSelf = 0;

  /**
   * A connection gater that denies nothing: it watches each inbound connection for the upgrader's
   * self-handshake refusal, the only trace such a connection leaves.
   */
  readonly gater: ConnectionGater = {
    denyInboundConnection: (maConn: MultiaddrConnection) => {
      maConn.addEventListener("close", (evt) => {
        if (isSelfHandshake(evt.error)) this.#inboundSelf(maConn.remoteAddr);
      }, { once: true });
      return false;
    },
  };

  constructor(peerId: string, problems: IdentityProblems) {
    this.#peerId = peerId;
    this.#problems = problems;
  }

  #inboundSelf(remote: Multiaddr): void {
    this.#lastInboundSelf = Date.now();
    // while this node probes, the probe decides whether the handshake was its own
    if (this.#probing > 0) return;
    const host = hostOf(remote);
    this.#problems.report(`inbound:${host}`, {
      kind: "peer_id_clash",
      peer_id: this.#peerId,
      node_id: null,
      addresses: [host],
      detected_by: "inbound_connection",
      message: `this node's peer id ${this.#peerId} is also used by a node connecting from ` +
        `${host}: ${COPIED_KEY_REMEDY}`,
    });
  }

  /**
   * Probes `address` (a bootstrap entry naming this node's peer id) for another holder of this
   * node's key. An address of this node's own is skipped; a different peer answering there is
   * disconnected again (the entry names another peer id than the one that answers).
   */
  async probe(node: MeshNode, address: Multiaddr): Promise<void> {
    const target = address.decapsulateCode(CODE_P2P);
    const own = node.getMultiaddrs().map((a) => a.decapsulateCode(CODE_P2P).toString());
    if (own.includes(target.toString())) return;
    const started = Date.now();
    this.#probing++;
    try {
      const met = await node.dial(target, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) })
        .then(async (conn) => {
          await conn.close().catch(() => {});
          return false;
        }, isSelfHandshake);
      if (!met) return;
      await sleep(LOOPBACK_GRACE_MS);
      if (this.#lastInboundSelf >= started) return;
      this.#problems.report(`dial:${target}`, {
        kind: "peer_id_clash",
        peer_id: this.#peerId,
        node_id: null,
        addresses: [target.toString()],
        detected_by: "bootstrap_dial",
        message: `this node's peer id ${this.#peerId} is also used by ${target}: ` +
          COPIED_KEY_REMEDY,
      });
    } finally {
      this.#probing--;
    }
  }
}
