import type { Logger } from "../system/logger.ts";

/**
 * What is wrong with an identity:
 * - `peer_id_clash`: another process holds this node's identity key (a copied data dir);
 * - `peer_id_clash_seen`: this node sees two processes behind one other peer id;
 * - `node_id_clash`: another peer id announces this node's `node.id`.
 */
export type IdentityProblemKind = "peer_id_clash" | "peer_id_clash_seen" | "node_id_clash";

/** How a problem was noticed. */
export type IdentityEvidence =
  | "bootstrap_dial"
  | "inbound_connection"
  | "gossip"
  | "two_connections"
  | "advert";

/**
 * One identity problem as `/v1/status` lists it (`identity_problems`), so an operator sees why a
 * node is isolated or why two boxes count as one, and what to do about it.
 */
export interface IdentityProblem {
  kind: IdentityProblemKind;
  /** The shared peer id (`peer_id_clash*`), or the other node's peer id (`node_id_clash`). */
  peer_id: string;
  /** The shared node id (`node_id_clash`), or the other process's node id when known. */
  node_id: string | null;
  /** Where the other process(es) were seen (multiaddrs); empty when only gossip told. */
  addresses: string[];
  detected_by: IdentityEvidence;
  /** One line: what is wrong and how to fix it (the same line is logged). */
  message: string;
  first_seen_at: string;
  last_seen_at: string;
}

/** A problem as reported by a detector, before it is timestamped. */
export type IdentityReport = Omit<IdentityProblem, "first_seen_at" | "last_seen_at">;

/**
 * The identity problems this node has noticed since it started. Each distinct problem is logged
 * once, loudly (error for a shared peer id: that node is cut off from part of the mesh; warn
 * for a shared node id), and kept with when it was first and last seen.
 */
export class IdentityProblems {
  readonly #logger: Logger;
  readonly #problems = new Map<string, IdentityProblem>();

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** Records a problem under `key` (one entry per distinct problem); logs it the first time. */
  report(key: string, problem: IdentityReport): void {
    const now = new Date().toISOString();
    const previous = this.#problems.get(key);
    this.#problems.set(key, {
      ...problem,
      first_seen_at: previous?.first_seen_at ?? now,
      last_seen_at: now,
    });
    if (previous) return;
    const fields = {
      kind: problem.kind,
      peer_id: problem.peer_id,
      node_id: problem.node_id,
      addresses: problem.addresses,
      detected_by: problem.detected_by,
    };
    if (problem.kind === "node_id_clash") this.#logger.warn(problem.message, fields);
    else this.#logger.error(problem.message, fields);
  }

  /** Drops a problem that is over (the evidence went away). */
  resolve(key: string): void {
    const problem = this.#problems.get(key);
    if (!problem) return;
    this.#problems.delete(key);
    this.#logger.info("identity problem over", { problem: problem.message });
  }

  /** Every problem recorded, oldest first. */
  list(): IdentityProblem[] {
    return [...this.#problems.values()];
  }
}
