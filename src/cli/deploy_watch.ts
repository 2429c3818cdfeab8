import { type DeploymentStatus, TERMINAL_STATES } from "../protocol/status.ts";
import { shortPeerId } from "./table.ts";

/** A report older than this is shown with its age (a node that is offline now, say). */
const STALE_SECONDS = 60;

function ageText(seconds: number): string {
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86_400)} days`;
}

/** What one status changed in a watch: the line to print, and a warning if it showed a clash. */
export interface WatchUpdate {
  /** The node's new state line (absent when neither state nor progress changed). */
  line?: string;
  /** A node id that two peer ids report (printed once per pair). */
  warning?: string;
  /** The first status from this peer id. */
  newNode: boolean;
}

/**
 * The fleet's answers to one directive as `loam deploy --watch` follows them: one entry per
 * peer id that signed a status (not per node id: two nodes sharing a `node.id` would count as
 * one, with the last report winning), each shown with its node id and short peer id. A node id
 * reported by two peer ids is warned about.
 */
export class DeploymentWatch {
  readonly #byPeer = new Map<string, DeploymentStatus>();
  readonly #warned = new Set<string>();
  /** The loam version each peer last advertised. */
  readonly #versions = new Map<string, string>();
  #lastNewAt = Date.now();

  /**
   * Takes the version a node's advert names: a line when it is new or changed for a node that
   * reports on the watched directive, so a self-update shows each node's version as it goes.
   */
  version(signer: string, nodeId: string, version: string): string | undefined {
    const before = this.#versions.get(signer);
    this.#versions.set(signer, version);
    if (before === version || !this.#byPeer.has(signer)) return undefined;
    const change = before === undefined ? version : `${before} → ${version}`;
    return `${nodeId.padEnd(20)} ${shortPeerId(signer)} version ${change}`;
  }

  /** Takes a status for the watched directive, signed by `signer`. */
  record(status: DeploymentStatus, signer: string): WatchUpdate {
    const previous = this.#byPeer.get(signer);
    const update: WatchUpdate = { newNode: !previous };
    if (!previous) this.#lastNewAt = Date.now();
    // gossip may deliver an older report after a newer one (a republish, a relay)
    if (previous && Date.parse(previous.reported_at) > Date.parse(status.reported_at)) {
      return update;
    }
    const twin = [...this.#byPeer.entries()].find(([peer, s]) =>
      peer !== signer && s.node_id === status.node_id
    )?.[0];
    const pair = twin ? [twin, signer].sort().join(" ") : "";
    if (twin && !this.#warned.has(pair)) {
      this.#warned.add(pair);
      update.warning = `warning: node id "${status.node_id}" is reported by two peers, ` +
        `${shortPeerId(twin)} and ${shortPeerId(signer)}: two nodes share one node.id; give ` +
        `one of them its own (--node-id, LOAM_NODE_ID or node.id in loam.toml)`;
    }
    if (
      previous?.state === status.state && previous.progress_percent === status.progress_percent
    ) return update;
    this.#byPeer.set(signer, status);
    const error = status.error_message ? `  ${status.error_message}` : "";
    const age = (Date.now() - Date.parse(status.reported_at)) / 1000;
    const stale = age >= STALE_SECONDS ? `  (reported ${ageText(age)} ago)` : "";
    update.line = `${status.node_id.padEnd(20)} ${shortPeerId(signer)} ${status.state.padEnd(12)} ${
      String(status.progress_percent).padStart(3)
    }%${error}${stale}`;
    return update;
  }

  /**
   * True once at least `expect` nodes reported, all of them are in a final state, and no new
   * node reported for `quietMs`: late nodes that report before then are still waited for. With
   * `version` (a loam_agent directive's), each active node must also have advertised it: its
   * status says active as soon as the new version confirmed, its advert may come a moment later.
   */
  settled(quietMs: number, expect = 1, version?: string): boolean {
    const entries = [...this.#byPeer.entries()];
    return entries.length >= expect &&
      entries.every(([peer, s]) =>
        TERMINAL_STATES.includes(s.state) &&
        (version === undefined || s.state !== "active" || this.#versions.get(peer) === version)
      ) &&
      Date.now() - this.#lastNewAt >= quietMs;
  }

  /** Counts the nodes that reported, and those that are active. */
  tally(): { reporting: number; active: number } {
    const all = this.statuses();
    return { reporting: all.length, active: all.filter((s) => s.state === "active").length };
  }

  /** The latest status of every peer id that reported. */
  statuses(): DeploymentStatus[] {
    return [...this.#byPeer.values()];
  }
}
