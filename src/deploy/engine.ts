/**
 * @module
 * Deployments: the engine takes a directive through pending → downloading → ready →
 * activating → active (or failed / rolled_back), one record per deployment written atomically
 * at every step, and resumes what was in progress after a restart. Targeting, replacement,
 * expiry and the archive of signed orders live beside it.
 */

import type { DeploymentDirective } from "../protocol/directive.ts";
import type { RollbackOrder } from "../protocol/rollback.ts";
import {
  type DeploymentState,
  type DeploymentStatus,
  TERMINAL_STATES,
} from "../protocol/status.ts";
import type { BlobFetcher, BlobRequest } from "../blobs/fetcher.ts";
import {
  ActivationRolledBack,
  type ArtifactKind,
  type RuntimeAdapter,
} from "../runtimes/adapter.ts";
import type { Logger } from "../system/logger.ts";
import { matchScope, type NodeFacts, unmetRequirement } from "./targeting.ts";
import {
  type DeploymentRecord,
  type DeploymentRecords,
  RecordWriteError,
  type SeenDirectives,
} from "./records.ts";
import { TransitionRefused } from "./transitions.ts";
import { replaces } from "./replacement.ts";
import { inForceUntil } from "./directive_expiry.ts";

/**
 * The fetch of a directive's artifact, the same for each of its fetches (first download,
 * activation of a `ready` one, re-activation after a restart): hash, URLs and declared size.
 */
function blobRequest(artifact: DeploymentDirective["artifact"]): BlobRequest {
  return { sha256: artifact.blob_hash, urls: artifact.urls, size: artifact.size_bytes };
}

/** What the engine works with. */
export interface EngineDeps {
  records: DeploymentRecords;
  seen: SeenDirectives;
  fetcher: BlobFetcher;
  /** Runtime adapters by artifact type; a type without one fails at activation. */
  adapters: ReadonlyMap<ArtifactKind, RuntimeAdapter>;
  /** This node's id, for status reports. */
  nodeId: string;
  /** Read fresh for each directive (free disk changes). */
  facts(): NodeFacts;
  publishStatus(status: DeploymentStatus): void;
  maxConcurrent: number;
  /** `deploy.directive_ttl_hours`: how long a directive without `expires_at` is in force. */
  directiveTtlHours: number;
  logger: Logger;
}

/** What happened to a submitted directive. */
export type SubmitResult =
  | { outcome: "accepted"; record: DeploymentRecord }
  | { outcome: "not_targeted"; reason: string }
  | { outcome: "replay" | "expired"; reason: string };

/** What DELETE did: a deployment in progress or active ended rolled_back, a final one is gone. */
export type CancelResult =
  | { outcome: "rolled_back"; record: DeploymentRecord }
  | { outcome: "removed"; directive_id: string; state: DeploymentState };

const PRIORITY_RANK = { critical: 0, high: 1, normal: 2, low: 3 } as const;
/** Deployments whose status is sent again after a peer connects (newest first). */
const REPUBLISH_LIMIT = 100;
/** Progress is persisted and published at most this often (and at every 10 %). */
const PROGRESS_INTERVAL_MS = 1000;

/**
 * Why a deployment's work was stopped before it finished, as the abort reason of its signal:
 * the state it ends in (`failed` after a timeout or a full disk, `rolled_back` when cancelled or
 * rolled back) and why; no state when the agent is stopping and the work resumes at next start.
 */
class Stop extends Error {
  readonly state: "failed" | "rolled_back" | undefined;

  constructor(message: string, state: "failed" | "rolled_back" | undefined) {
    super(message);
    this.name = "Stop";
    this.state = state;
  }
}

/** The work of one deployment that is downloading or activating now. */
interface Work {
  controller: AbortController;
  /** Settles once the work has really stopped (fetch and adapter included). */
  done: Promise<void>;
}

/**
 * The deployment lifecycle on this node: intake (replay and expiry checks, real targeting,
 * hardware requirements), a priority queue with bounded concurrency, and the states pending →
 * downloading → activating → active | failed, each checked against the table of allowed
 * transitions and persisted before it is published. Work in progress carries an AbortSignal
 * into the fetch and the adapter, so a timeout or a cancel really stops it, and its slot is
 * given back only once it has.
 */
export class DeploymentEngine {
  readonly #deps: EngineDeps;
  readonly #queue: { id: string; rank: number; seq: number }[] = [];
  readonly #work = new Map<string, Work>();
  #seq = 0;
  #running = 0;
  #stopping = false;
  #writes: Promise<unknown> = Promise.resolve();

  constructor(deps: EngineDeps) {
    this.#deps = deps;
  }

  /** Takes a directive from the local API or the mesh (already verified and parsed). */
  async submit(directive: DeploymentDirective, source: "api" | "mesh"): Promise<SubmitResult> {
    const { records, seen, logger } = this.#deps;
    const id = directive.directive_id;
    const log = logger.child({ directive_id: id, source });
    if (seen.has(id) || records.get(id)) {
      log.info("directive ignored", { reason: "replay" });
      return { outcome: "replay", reason: `directive ${id} was already seen` };
    }
    await seen.add(id).catch((err) =>
      log.error("directive id not persisted for replay protection", { error: err.message })
    );
    const until = inForceUntil(directive, this.#deps.directiveTtlHours);
    if (until < Date.now()) {
      const at = new Date(until).toISOString();
      const why = directive.expires_at ? "" : " (issued_at + deploy.directive_ttl_hours)";
      log.info("directive ignored", { reason: "expired", expires_at: at });
      return { outcome: "expired", reason: `directive ${id} expired at ${at}${why}` };
    }
    const facts = this.#deps.facts();
    const target = matchScope(directive.scope, facts);
    if (!target.targeted) {
      log.info("directive not for this node", { reason: target.reason });
      return { outcome: "not_targeted", reason: target.reason };
    }
    const now = new Date().toISOString();
    let unwritten: RecordWriteError | undefined;
    await records.save({
      directive_id: id,
      state: "pending",
      progress_percent: 0,
      source,
      directive,
      history: [{ state: "pending", at: now }],
    }).catch((err) => {
      if (!(err instanceof RecordWriteError)) throw err;
      unwritten = err;
    });
    log.info("deployment accepted", {
      artifact: directive.artifact.name ?? directive.artifact.blob_hash,
    });
    this.#publish(records.get(id)!);
    const unmet = unwritten?.message ?? unmetRequirement(directive, facts);
    if (unmet) {
      const failed = await this.#move(id, "failed", { error_message: unmet });
      log.warn("deployment failed", { error: unmet });
      return { outcome: "accepted", record: failed };
    }
    this.#enqueue(directive);
    return { outcome: "accepted", record: records.get(id)! };
  }

  /**
   * Deactivates an active deployment through its adapter (a config package's previous content
   * comes back) and marks it rolled_back; undefined when there is no such deployment.
   */
  async deactivate(
    id: string,
    reason = "deactivated on request",
  ): Promise<DeploymentRecord | undefined> {
    const record = this.#deps.records.get(id);
    if (!record) return undefined;
    if (record.state !== "active" || !record.instance_id) {
      throw new Error(`deployment ${id} is ${record.state}, not active`);
    }
    const adapter = this.#deps.adapters.get(record.directive.artifact.artifact_type.type);
    await adapter?.deactivate(record.instance_id);
    this.#deps.logger.info("deployment deactivated", {
      directive_id: id,
      instance_id: record.instance_id,
      reason,
    });
    return await this.#move(id, "rolled_back", { error_message: reason });
  }

  /**
   * DELETE of a deployment, in any state: a queued or ready one is dropped, a download or an
   * activation is aborted (the partial download stays for a later deployment of the same hash;
   * what the activation had started is stopped), an active one is deactivated; each ends
   * rolled_back with the reason. A record in a final state is removed. Undefined when there is
   * no such deployment.
   */
  async cancel(id: string): Promise<CancelResult | undefined> {
    const record = this.#deps.records.get(id);
    if (!record) return undefined;
    if (record.state === "failed" || record.state === "rolled_back") {
      await this.#deps.records.remove(id);
      this.#deps.logger.info("deployment record removed", { directive_id: id });
      this.#deps.publishStatus(this.#status({
        ...record,
        error_message: `removed from this node on request` +
          (record.error_message ? ` (was: ${record.error_message})` : ""),
      }));
      return { outcome: "removed", directive_id: id, state: record.state };
    }
    const reason = record.state === "active"
      ? "deactivated on request"
      : `cancelled while ${record.state}`;
    return { outcome: "rolled_back", record: await this.#halt(id, reason) };
  }

  /**
   * A command post's rollback order: an active deployment is deactivated, a queued or ready
   * one dropped, one downloading or activating aborted; all end rolled_back. Replayed orders
   * are ignored; undefined when the deployment is not on this node.
   */
  async rollback(order: RollbackOrder): Promise<DeploymentRecord | undefined> {
    const { records, seen, logger } = this.#deps;
    if (seen.has(order.rollback_id)) return undefined;
    await seen.add(order.rollback_id).catch((err) =>
      logger.error("rollback id not persisted for replay protection", { error: err.message })
    );
    const record = records.get(order.directive_id);
    if (!record) return undefined;
    const reason = `rolled back by ${order.issuer_node_id}` +
      (order.reason ? `: ${order.reason}` : "");
    logger.info("rollback ordered", { directive_id: order.directive_id, state: record.state });
    if (record.state === "failed" || record.state === "rolled_back") return record;
    return await this.#halt(order.directive_id, reason);
  }

  /**
   * Brings a deployment that is not final to rolled_back with `reason`: running work is aborted
   * and waited for, a queued one leaves the queue, an active one is deactivated.
   */
  async #halt(id: string, reason: string): Promise<DeploymentRecord> {
    const work = this.#work.get(id);
    if (work) {
      work.controller.abort(new Stop(reason, "rolled_back"));
      await work.done;
    }
    const queued = this.#queue.findIndex((q) => q.id === id);
    if (queued >= 0) this.#queue.splice(queued, 1);
    const record = this.#deps.records.get(id)!;
    // the work may have reached active just before the abort
    if (record.state === "active") return (await this.deactivate(id, reason))!;
    if (record.state === "failed" || record.state === "rolled_back") return record;
    this.#deps.logger.info("deployment stopped", { directive_id: id, reason });
    return await this.#move(id, "rolled_back", { error_message: reason });
  }

  /**
   * After a restart: queues again every deployment that had not reached a final state, and
   * brings active ones back, all at once (an edge box that lost power runs again what it ran;
   * twenty programs take one start check, not twenty). A record that cannot be resumed is
   * quarantined with the reason logged; start-up goes on.
   */
  async resume(): Promise<void> {
    const reactivations: Promise<void>[] = [];
    for (const record of this.#deps.records.list()) {
      const id = record.directive_id;
      try {
        if (record.state === "active" && record.instance_id) {
          reactivations.push(this.#reactivate(record));
        } else if (!TERMINAL_STATES.includes(record.state) && record.state !== "ready") {
          this.#deps.logger.info("resuming deployment", { directive_id: id, state: record.state });
          this.#enqueue(record.directive);
        }
      } catch (err) {
        const where = await this.#deps.records.quarantine(id);
        this.#deps.logger.error("deployment record quarantined", {
          directive_id: id,
          error: (err as Error).message,
          file: where,
        });
      }
    }
    await Promise.all(reactivations);
  }

  async #reactivate(record: DeploymentRecord): Promise<void> {
    const id = record.directive_id;
    const { artifact } = record.directive;
    try {
      const { path } = await this.#deps.fetcher.ensure(blobRequest(artifact));
      const adapter = this.#deps.adapters.get(artifact.artifact_type.type);
      await adapter?.resume(record.directive, record.instance_id!, path);
      this.#deps.logger.info("deployment re-activated", {
        directive_id: id,
        instance_id: record.instance_id,
      });
    } catch (err) {
      const message = `re-activation failed: ${(err as Error).message}`;
      this.#deps.logger.error("deployment failed", { directive_id: id, error: message });
      await this.#move(id, "failed", { error_message: message });
    }
  }

  /** An adapter gave up on an instance (e.g. a crash loop): its deployment fails with the reason. */
  instanceFailed(instanceId: string, reason: string): void {
    const record = this.#deps.records.list().find((r) =>
      r.instance_id === instanceId && r.state === "active"
    );
    if (!record) return;
    this.#deps.logger.warn("deployment failed", {
      directive_id: record.directive_id,
      error: reason,
    });
    void this.#move(record.directive_id, "failed", { error_message: reason });
  }

  /**
   * Agent shutdown: nothing more starts, and work in progress is aborted without a change of
   * state (it resumes at the next start); resolves once it has stopped.
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    const work = [...this.#work.values()];
    for (const w of work) w.controller.abort(new Stop("loam is stopping", undefined));
    await Promise.all(work.map((w) => w.done));
    await this.#writes;
  }

  #enqueue(directive: DeploymentDirective): void {
    const rank = PRIORITY_RANK[directive.options.priority];
    this.#queue.push({ id: directive.directive_id, rank, seq: this.#seq++ });
    this.#queue.sort((a, b) => a.rank - b.rank || a.seq - b.seq);
    this.#pump();
  }

  #pump(): void {
    while (
      !this.#stopping && this.#running < this.#deps.maxConcurrent && this.#queue.length > 0
    ) {
      const { id } = this.#queue.shift()!;
      this.#running++;
      void this.#run(id).finally(() => {
        this.#running--;
        this.#pump();
      });
    }
  }

  /**
   * Moves a deployment to `state`, one write after another, so a late progress write never
   * undoes a state. Never rejects: a change the table refuses is logged and skipped; a write
   * that fails leaves the new state in memory (and published), and a full disk stops the
   * deployment's work (an activation too, whose instance is then stopped), which then fails
   * with "disk full".
   */
  #move(
    id: string,
    state: DeploymentState,
    changes: Parameters<DeploymentRecords["transition"]>[2] = {},
  ): Promise<DeploymentRecord> {
    const { records, logger } = this.#deps;
    const done = this.#writes.then(async () => {
      try {
        const record = await records.transition(id, state, changes);
        this.#publish(record);
      } catch (err) {
        if (err instanceof TransitionRefused) {
          logger.debug("transition refused", { directive_id: id, error: err.message });
        } else if (err instanceof RecordWriteError) {
          logger.error("deployment record not written", { directive_id: id, error: err.message });
          const record = records.get(id);
          if (record) this.#publish(record);
          // an active state that is not on disk is not active: its instance is stopped
          if (err.diskFull && (state === "active" || !TERMINAL_STATES.includes(state))) {
            this.#work.get(id)?.controller.abort(new Stop(err.message, "failed"));
          }
        } else {
          logger.error("deployment transition failed", { directive_id: id, error: err });
        }
      }
      return records.get(id)!;
    });
    this.#writes = done;
    return done;
  }

  /**
   * Runs one step of a deployment's work under its signal: aborted at `timeout_seconds`, or by
   * {@link cancel}, {@link rollback} or {@link stop}. When aborted, the deployment ends in the
   * state the abort reason names, whatever error the interrupted work threw.
   */
  async #perform(id: string, work: (signal: AbortSignal) => Promise<void>): Promise<void> {
    const record = this.#deps.records.get(id)!;
    const log = this.#deps.logger.child({ directive_id: id });
    const seconds = record.directive.options.timeout_seconds;
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new Stop(`timed out after ${seconds} s`, "failed")),
      seconds * 1000,
    );
    let finished!: () => void;
    this.#work.set(id, { controller, done: new Promise((resolve) => finished = resolve) });
    try {
      await work(controller.signal);
    } catch (err) {
      const stop = controller.signal.aborted ? controller.signal.reason : undefined;
      if (stop instanceof Stop) {
        if (stop.state) {
          await this.#move(id, stop.state, { error_message: stop.message });
          log.warn(stop.state === "failed" ? "deployment failed" : "deployment stopped", {
            error: stop.message,
          });
        }
      } else {
        const message = (err as Error).message;
        await this.#move(id, "failed", { error_message: message });
        log.warn("deployment failed", { error: message });
      }
    } finally {
      clearTimeout(timer);
      this.#work.delete(id);
      finished();
    }
  }

  async #run(id: string): Promise<void> {
    const { records, fetcher, logger } = this.#deps;
    const record = records.get(id);
    if (!record || TERMINAL_STATES.includes(record.state)) return;
    const { directive } = record;
    await this.#perform(id, async (signal) => {
      const resumedActivation = record.state === "activating";
      if (!resumedActivation) {
        await this.#move(id, "downloading", { progress_percent: record.progress_percent });
      }
      const { artifact } = directive;
      let lastAt = 0;
      let lastPercent = 0;
      const { path } = await fetcher.ensure(
        blobRequest(artifact),
        (p) => {
          const percent = Math.floor((p.bytes / Math.max(1, artifact.size_bytes)) * 100);
          const now = performance.now();
          if (
            percent >= lastPercent + 10 ||
            (now - lastAt >= PROGRESS_INTERVAL_MS && percent > lastPercent)
          ) {
            lastAt = now;
            lastPercent = percent;
            void this.#move(id, "downloading", { progress_percent: Math.min(99, percent) });
          }
        },
        signal,
      );
      signal.throwIfAborted();
      if (!directive.options.auto_activate && !resumedActivation) {
        await this.#move(id, "ready", { progress_percent: 100 });
        logger.info("deployment ready; waiting for activation", { directive_id: id });
        return;
      }
      await this.#activate(id, directive, path, signal);
    });
  }

  /**
   * activating → active through the artifact type's runtime adapter (throws its reason). With
   * `replace_existing`, the deployments this one replaces are retired only after it is active;
   * when it fails they keep running and this one ends rolled_back, saying so. An instance that
   * came up although the signal aborted, or whose active record could not be written, is
   * deactivated again.
   */
  async #activate(
    id: string,
    directive: DeploymentDirective,
    path: string,
    signal: AbortSignal,
  ): Promise<void> {
    await this.#move(id, "activating", { progress_percent: 100 });
    signal.throwIfAborted();
    const replaced = directive.options.replace_existing ? this.#replacedBy(directive) : [];
    const kind = directive.artifact.artifact_type.type;
    const adapter = this.#deps.adapters.get(kind);
    let instanceId: string;
    try {
      if (!adapter) throw new Error(`no runtime adapter for ${kind} in this version of loam`);
      instanceId = (await adapter.activate(directive, path, signal)).instance_id;
    } catch (err) {
      if (err instanceof ActivationRolledBack && !signal.aborted) {
        await this.#move(id, "rolled_back", { error_message: err.message });
        this.#deps.logger.warn("deployment rolled back", { directive_id: id, error: err.message });
        return;
      }
      if (signal.aborted || replaced.length === 0) throw err;
      const keep = replaced.map((r) => r.directive_id).join(", ");
      const reason = `activation failed (${(err as Error).message}); ${keep} keeps running`;
      await this.#move(id, "rolled_back", { error_message: reason });
      this.#deps.logger.warn("deployment rolled back", { directive_id: id, error: reason });
      return;
    }
    if (!signal.aborted) await this.#move(id, "active", { instance_id: instanceId });
    // aborted meanwhile, or the record could not say active (a full disk aborts the work): the
    // instance must not outlive a record that does not own it
    if (signal.aborted) {
      await adapter.deactivate(instanceId).catch((err) =>
        this.#deps.logger.error("instance not removed", { instance_id: instanceId, error: err })
      );
      throw signal.reason;
    }
    this.#deps.logger.info("deployment active", { directive_id: id, instance_id: instanceId });
    for (const old of replaced) {
      const adapter = this.#deps.adapters.get(old.directive.artifact.artifact_type.type);
      if (adapter?.retire) await adapter.retire(old.instance_id!);
      else await adapter?.deactivate(old.instance_id!);
      await this.#move(old.directive_id, "rolled_back", { error_message: `replaced by ${id}` });
      this.#deps.logger.info("deployment replaced", { directive_id: old.directive_id, by: id });
    }
  }

  /** Active deployments that `directive` replaces (see {@link replaces}). */
  #replacedBy(directive: DeploymentDirective): DeploymentRecord[] {
    return this.#deps.records.list().filter((r) =>
      r.directive_id !== directive.directive_id && r.state === "active" &&
      r.instance_id !== undefined && replaces(directive, r.directive)
    );
  }

  /**
   * Activates a deployment that waits in `ready` (auto_activate was false), under the same
   * timeout and cancel as any work; resolves with the record once it is active, failed or
   * rolled back; undefined when there is no such deployment.
   */
  async activateReady(id: string): Promise<DeploymentRecord | undefined> {
    const record = this.#deps.records.get(id);
    if (!record) return undefined;
    if (record.state !== "ready" || this.#work.has(id)) {
      throw new Error(`deployment ${id} is ${record.state}, not ready`);
    }
    const { artifact } = record.directive;
    await this.#perform(id, async (signal) => {
      const { path } = await this.#deps.fetcher.ensure(blobRequest(artifact), undefined, signal);
      await this.#activate(id, record.directive, path, signal);
    });
    return this.#deps.records.get(id);
  }

  /**
   * Publishes the current status of the newest deployments again, so an observer that was
   * partitioned (or just joined) converges; called after a peer connects.
   */
  republish(): void {
    for (const record of this.#deps.records.list().slice(0, REPUBLISH_LIMIT)) this.#publish(record);
  }

  #publish(record: DeploymentRecord): void {
    this.#deps.publishStatus(this.#status(record));
  }

  #status(record: DeploymentRecord): DeploymentStatus {
    return {
      directive_id: record.directive_id,
      node_id: this.#deps.nodeId,
      reported_at: new Date().toISOString(),
      state: record.state,
      progress_percent: Math.round(record.progress_percent),
      ...(record.error_message ? { error_message: record.error_message } : {}),
      ...(record.instance_id ? { instance_id: record.instance_id } : {}),
    };
  }
}
