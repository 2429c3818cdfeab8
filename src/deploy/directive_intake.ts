import type { SignedOrder } from "../protocol/directives_sync.ts";
import type { Logger } from "../system/logger.ts";
import type { DirectiveArchive } from "./directive_archive.ts";
import type { DeploymentEngine } from "./engine.ts";

/**
 * Where signed orders from the mesh enter, by gossip or from a peer's archive: each goes
 * through the archive first (kept for late nodes; a rolled-back, replaced, expired or known
 * one stops there), then to the engine, which checks it as it checks any directive (replay
 * guard, expiry, targeting, requirements). A relayed directive is therefore taken exactly as a
 * fresh one.
 */
export class DirectiveIntake {
  readonly #archive: DirectiveArchive;
  readonly #engine: DeploymentEngine;
  readonly #logger: Logger;

  constructor(archive: DirectiveArchive, engine: DeploymentEngine, logger: Logger) {
    this.#archive = archive;
    this.#engine = engine;
    this.#logger = logger;
  }

  /** Takes one order; resolves true when it was new here. Never rejects (problems are logged). */
  async take(order: SignedOrder, via: "gossip" | "sync"): Promise<boolean> {
    const id = order.kind === "directive" ? order.payload.directive_id : order.payload.rollback_id;
    try {
      if (order.kind === "directive") {
        const verdict = await this.#archive.offerDirective(order.payload, order.envelope);
        if (verdict !== "new") return this.#skipped(order.kind, id, verdict, via);
        await this.#engine.submit(order.payload, "mesh");
      } else {
        const verdict = await this.#archive.offerRollback(order.payload, order.envelope);
        if (verdict !== "new") return this.#skipped(order.kind, id, verdict, via);
        await this.#engine.rollback(order.payload);
      }
      return true;
    } catch (err) {
      this.#logger.error(`${order.kind} not handled`, { id, via, error: err });
      return false;
    }
  }

  /** Takes orders in turn (a peer sends rollback orders first); resolves with how many were new. */
  async takeAll(orders: SignedOrder[], via: "gossip" | "sync"): Promise<number> {
    let fresh = 0;
    for (const order of orders) if (await this.take(order, via)) fresh++;
    return fresh;
  }

  /**
   * Logs why an order stopped at the archive: an id already held is a replay when it came by
   * gossip (worth an info line), and routine when a sync round crossed a fresh copy (debug).
   */
  #skipped(kind: string, id: string, verdict: string, via: string): false {
    const known = verdict === "known";
    this.#logger[known && via === "sync" ? "debug" : "info"](`${kind} ignored`, {
      id,
      reason: known && via === "gossip" ? "replay" : verdict,
      via,
    });
    return false;
  }
}
