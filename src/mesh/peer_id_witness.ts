import type { Connection, IdentifyResult } from "@libp2p/interface";
import type { MeshNode } from "./node.ts";
import type { IdentityProblems } from "./identity_problems.ts";
import { COPIED_KEY_REMEDY } from "./peer_id_clash.ts";

/**
 * How long two connections of one peer id must both stay open, still announcing different
 * listen addresses, before they count as two processes: longer than libp2p's connection monitor
 * takes (a ping every 10 s) to close a dead connection left by a previous run of the peer.
 */
const CONFIRM_MS = 12_000;

/**
 * Notices, as a third node, two processes behind one peer id (a copied data dir): both connect
 * to it, which libp2p allows, and identify on each connection announces a different set of
 * listen addresses. One process announces the same set on all its connections (identify push
 * updates every connection when its addresses change); a second process with the key announces
 * its own. The clash is reported once the two have stayed open side by side for
 * {@link CONFIRM_MS}, and cleared when one of them closes. The two processes themselves may not
 * notice: this node relays neither's gossip to the other (they share the peer id it came from).
 */
export class PeerIdWitness {
  readonly #node: MeshNode;
  readonly #problems: IdentityProblems;
  /** Listen addresses announced on each open connection, by connection id. */
  readonly #announced = new Map<string, string>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();

  constructor(node: MeshNode, problems: IdentityProblems) {
    this.#node = node;
    this.#problems = problems;
    node.addEventListener("peer:identify", (evt) => this.#identified(evt.detail));
    node.addEventListener("connection:close", (evt) => {
      this.#announced.delete(evt.detail.id);
      const peer = evt.detail.remotePeer.toString();
      if (!this.#pair(peer)) this.#problems.resolve(`seen:${peer}`);
    });
  }

  #identified(result: IdentifyResult): void {
    const addrs = result.listenAddrs.map((a) => a.toString()).sort().join(" ");
    this.#announced.set(result.connection.id, addrs);
    const peer = result.peerId.toString();
    if (!this.#pair(peer)) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.#confirm(peer);
    }, CONFIRM_MS);
    this.#timers.add(timer);
  }

  /** Two open connections of `peer` that announce different listen addresses, if any. */
  #pair(peer: string): [Connection, Connection] | undefined {
    const open = this.#node.getConnections().filter((c) =>
      c.remotePeer.toString() === peer && c.status === "open" && this.#announced.has(c.id)
    );
    for (const a of open) {
      const b = open.find((c) => this.#announced.get(c.id) !== this.#announced.get(a.id));
      if (b) return [a, b];
    }
    return undefined;
  }

  #confirm(peer: string): void {
    const pair = this.#pair(peer);
    if (!pair) return;
    const listening = pair.map((c) => this.#announced.get(c.id) || "nothing");
    this.#problems.report(`seen:${peer}`, {
      kind: "peer_id_clash_seen",
      peer_id: peer,
      node_id: null,
      addresses: pair.map((c) => c.remoteAddr.toString()),
      detected_by: "two_connections",
      message: `peer id ${peer} is used by two nodes at once (one listening on ${listening[0]}, ` +
        `the other on ${listening[1]}): ${COPIED_KEY_REMEDY}`,
    });
  }

  /** Drops pending confirmations (the node stops). */
  stop(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }
}
