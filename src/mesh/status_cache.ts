import type { DeploymentStatus } from "../protocol/status.ts";

/** Deployments whose statuses are kept; the least recently reported go first. */
const MAX_DIRECTIVES = 256;
/** Nodes kept per deployment. */
const MAX_NODES = 4096;

/**
 * The latest status every node signed for each recent deployment, as seen on the status topic
 * (this node's own included), with the envelope as signed: what a command post that joins later
 * is answered with. Memory only: after a restart, nodes republishing on connect and the
 * statuses asked of the peer that hands a directive over refill it.
 */
export class StatusCache {
  readonly #byDirective = new Map<
    string,
    Map<string, { reportedAt: number; envelope: string }>
  >();

  /** Keeps `status` from `signer` unless a later report of that node is already kept. */
  record(status: DeploymentStatus, signer: string, envelope: string): void {
    const id = status.directive_id;
    const nodes = this.#byDirective.get(id) ?? new Map();
    this.#byDirective.delete(id); // re-inserted last: the most recently reported
    this.#byDirective.set(id, nodes);
    while (this.#byDirective.size > MAX_DIRECTIVES) {
      this.#byDirective.delete(this.#byDirective.keys().next().value!);
    }
    const reportedAt = Date.parse(status.reported_at);
    const kept = nodes.get(signer);
    if (kept && kept.reportedAt > reportedAt) return;
    if (!kept && nodes.size >= MAX_NODES) return;
    nodes.set(signer, { reportedAt, envelope });
  }

  /** The kept envelopes of `directiveId`'s statuses, one per node. */
  envelopesOf(directiveId: string): string[] {
    return [...(this.#byDirective.get(directiveId)?.values() ?? [])].map((e) => e.envelope);
  }
}
