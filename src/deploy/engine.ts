import type { DeploymentDirective } from "../protocol/directive.ts";
import type { RollbackOrder } from "../protocol/rollback.ts";
import {
  type DeploymentState,
  type DeploymentStatus,
  TERMINAL_STATES,
} from "../protocol/status.ts";
import type { BlobFetcher } from "../blobs/fetcher.ts";
import type { ArtifactKind, RuntimeAdapter } from "../runtimes/adapter.ts";
import type { Logger } from "../system/logger.ts";
import { matchScope, type NodeFacts, unmetRequirement } from "./targeting.ts";
import type { DeploymentRecord, DeploymentRecords, SeenDirectives } from "./records.ts";

/** What the engine works with. */
export interface EngineDeps {
  records: DeploymentRecords;
  seen: SeenDirectives;
  fetcher: BlobFetcher;
  /** Runtime adapters by artifact type; a type without one fails at activation. */
  adapters: Map<ArtifactKind, RuntimeAdapter>;
  /** This node's id, for status reports. */
  nodeId: string;
  /** Read fresh for each directive (free disk changes). */
  facts(): NodeFacts;
  publishStatus(status: DeploymentStatus): void;
  maxConcurrent: number;
  logger: Logger;
}

/** What happened to a submitted directive. */
export type SubmitResult =
  | { outcome: "accepted"; record: DeploymentRecord }
  | { outcome: "not_targeted"; reason: string }
  | { outcome: "replay" | "expired"; reason: string };

const PRIORITY_RANK = { critical: 0, high: 1, normal: 2, low: 3 } as const;
/** Deployments whose status is sent again after a peer connects (newest first). */
const REPUBLISH_LIMIT = 100;
/** Progress is persisted and published at most this often (and at every 10 %). */
const PROGRESS_INTERVAL_MS = 1000;

/**
 * The deployment lifecycle on this node: intake (replay and expiry checks, real targeting,
 * hardware requirements), a priority queue with bounded concurrency, and the states pending →
 * downloading → activating → active | failed, each persisted before it is published.
 */
export class DeploymentEngine {
  readonly #deps: EngineDeps;
  readonly #queue: { id: string; rank: number; seq: number }[] = [];
  /** Rollbacks ordered while a deployment was downloading or activating, by id: the reason. */
  readonly #rollbacks = new Map<string, string>();
  #seq = 0;
  #running = 0;
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
    await seen.add(id);
    if (directive.expires_at && Date.parse(directive.expires_at) < Date.now()) {
      log.info("directive ignored", { reason: "expired", expires_at: directive.expires_at });
      return { outcome: "expired", reason: `directive ${id} expired at ${directive.expires_at}` };
    }
    const facts = this.#deps.facts();
    const target = matchScope(directive.scope, facts);
    if (!target.targeted) {
      log.info("directive not for this node", { reason: target.reason });
      return { outcome: "not_targeted", reason: target.reason };
    }
    const now = new Date().toISOString();
    await records.save({
      directive_id: id,
      state: "pending",
      progress_percent: 0,
      source,
      directive,
      history: [{ state: "pending", at: now }],
    });
    log.info("deployment accepted", {
      artifact: directive.artifact.name ?? directive.artifact.blob_hash,
    });
    this.#publish(records.get(id)!);
    const unmet = unmetRequirement(directive, facts);
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
   * A command post's rollback order: an active deployment is deactivated, a queued or ready
   * one dropped, one downloading or activating is undone as soon as that step ends. Replayed
   * orders are ignored; undefined when the deployment is not on this node.
   */
  async rollback(order: RollbackOrder): Promise<DeploymentRecord | undefined> {
    const { records, seen, logger } = this.#deps;
    if (seen.has(order.rollback_id)) return undefined;
    await seen.add(order.rollback_id);
    const record = records.get(order.directive_id);
    if (!record) return undefined;
    const reason = `rolled back by ${order.issuer_node_id}` +
      (order.reason ? `: ${order.reason}` : "");
    logger.info("rollback ordered", { directive_id: order.directive_id, state: record.state });
    switch (record.state) {
      case "active":
        return await this.deactivate(order.directive_id, reason);
      case "pending":
      case "ready": {
        const queued = this.#queue.findIndex((q) => q.id === order.directive_id);
        if (queued >= 0) this.#queue.splice(queued, 1);
        return await this.#move(order.directive_id, "rolled_back", { error_message: reason });
      }
      case "downloading":
      case "activating":
        this.#rollbacks.set(order.directive_id, reason);
        return record;
      default:
        return record;
    }
  }

  /**
   * After a restart: queues again every deployment that had not reached a final state, and
   * brings active ones back (an edge box that lost power runs again what it ran).
   */
  async resume(): Promise<void> {
    for (const record of this.#deps.records.list()) {
      const id = record.directive_id;
      if (record.state === "active" && record.instance_id) {
        const { artifact } = record.directive;
        try {
          const path = await this.#deps.fetcher.ensure({
            sha256: artifact.blob_hash,
            urls: artifact.urls,
          });
          const adapter = this.#deps.adapters.get(artifact.artifact_type.type);
          await adapter?.resume(record.directive, record.instance_id, path);
          this.#deps.logger.info("deployment re-activated", {
            directive_id: id,
            instance_id: record.instance_id,
          });
        } catch (err) {
          await this.#move(id, "failed", {
            error_message: `re-activation failed: ${(err as Error).message}`,
          });
        }
        continue;
      }
      if (TERMINAL_STATES.includes(record.state) || record.state === "ready") continue;
      this.#deps.logger.info("resuming deployment", { directive_id: id, state: record.state });
      this.#enqueue(record.directive);
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

  #enqueue(directive: DeploymentDirective): void {
    const rank = PRIORITY_RANK[directive.options.priority];
    this.#queue.push({ id: directive.directive_id, rank, seq: this.#seq++ });
    this.#queue.sort((a, b) => a.rank - b.rank || a.seq - b.seq);
    this.#pump();
  }

  #pump(): void {
    while (this.#running < this.#deps.maxConcurrent && this.#queue.length > 0) {
      const { id } = this.#queue.shift()!;
      this.#running++;
      void this.#run(id).finally(() => {
        this.#running--;
        this.#pump();
      });
    }
  }

  /** Transitions are written one after another, so a late progress write never undoes a state. */
  #move(
    id: string,
    state: DeploymentState,
    changes: Parameters<DeploymentRecords["transition"]>[2] = {},
  ): Promise<DeploymentRecord> {
    const done = this.#writes.then(async () => {
      const record = await this.#deps.records.transition(id, state, changes);
      this.#publish(record);
      return record;
    });
    this.#writes = done.catch(() => undefined);
    return done;
  }

  async #run(id: string): Promise<void> {
    const { records, fetcher, logger } = this.#deps;
    const directive = records.get(id)!.directive;
    const log = logger.child({ directive_id: id });
    const seconds = directive.options.timeout_seconds;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${seconds} s`)), seconds * 1000);
    });
    try {
      await Promise.race([
        timeout,
        (async () => {
          await this.#move(id, "downloading", {
            progress_percent: records.get(id)!.progress_percent,
          });
          const { artifact } = directive;
          let lastAt = 0;
          let lastPercent = 0;
          const path = await fetcher.ensure(
            { sha256: artifact.blob_hash, urls: artifact.urls, size: artifact.size_bytes },
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
          );
          const rollback = this.#rollbacks.get(id);
          if (rollback !== undefined) {
            this.#rollbacks.delete(id);
            await this.#move(id, "rolled_back", { error_message: rollback });
            return;
          }
          if (!directive.options.auto_activate) {
            await this.#move(id, "ready", { progress_percent: 100 });
            log.info("deployment ready; waiting for activation");
            return;
          }
          await this.#activate(id, directive, path);
        })(),
      ]);
    } catch (err) {
      const message = (err as Error).message;
      await this.#move(id, "failed", { error_message: message });
      log.warn("deployment failed", { error: message });
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * activating → active through the artifact type's runtime adapter (throws its reason). With
   * `replace_existing`, the deployments this one replaces are retired only after it is active;
   * when it fails they keep running and this one ends rolled_back, saying so.
   */
  async #activate(id: string, directive: DeploymentDirective, path: string): Promise<void> {
    await this.#move(id, "activating", { progress_percent: 100 });
    const replaced = directive.options.replace_existing ? this.#replacedBy(directive) : [];
    const kind = directive.artifact.artifact_type.type;
    const adapter = this.#deps.adapters.get(kind);
    let instanceId: string;
    try {
      if (!adapter) throw new Error(`no runtime adapter for ${kind} in this version of loam`);
      instanceId = (await adapter.activate(directive, path)).instance_id;
    } catch (err) {
      if (replaced.length === 0) throw err;
      const keep = replaced.map((r) => r.directive_id).join(", ");
      const reason = `activation failed (${(err as Error).message}); ${keep} keeps running`;
      await this.#move(id, "rolled_back", { error_message: reason });
      this.#deps.logger.warn("deployment rolled back", { directive_id: id, error: reason });
      return;
    }
    await this.#move(id, "active", { instance_id: instanceId });
    this.#deps.logger.info("deployment active", { directive_id: id, instance_id: instanceId });
    const rollback = this.#rollbacks.get(id);
    if (rollback !== undefined) {
      this.#rollbacks.delete(id);
      await this.deactivate(id, rollback);
      return;
    }
    for (const old of replaced) {
      const adapter = this.#deps.adapters.get(old.directive.artifact.artifact_type.type);
      if (adapter?.retire) await adapter.retire(old.instance_id!);
      else await adapter?.deactivate(old.instance_id!);
      await this.#move(old.directive_id, "rolled_back", { error_message: `replaced by ${id}` });
      this.#deps.logger.info("deployment replaced", { directive_id: old.directive_id, by: id });
    }
  }

  /**
   * Active deployments that `directive` replaces: those providing any of the same
   * capabilities or, when it names none, an artifact of the same name.
   */
  #replacedBy(directive: DeploymentDirective): DeploymentRecord[] {
    const provides = new Set(directive.capabilities);
    const name = directive.artifact.name;
    return this.#deps.records.list().filter((r) =>
      r.directive_id !== directive.directive_id && r.state === "active" &&
      r.instance_id !== undefined &&
      (provides.size > 0
        ? r.directive.capabilities.some((c) => provides.has(c))
        : name !== undefined && r.directive.artifact.name === name)
    );
  }

  /**
   * Activates a deployment that waits in `ready` (auto_activate was false); resolves with the
   * record once it is active or failed; undefined when there is no such deployment.
   */
  async activateReady(id: string): Promise<DeploymentRecord | undefined> {
    const record = this.#deps.records.get(id);
    if (!record) return undefined;
    if (record.state !== "ready") throw new Error(`deployment ${id} is ${record.state}, not ready`);
    const { artifact } = record.directive;
    try {
      const path = await this.#deps.fetcher.ensure({
        sha256: artifact.blob_hash,
        urls: artifact.urls,
      });
      await this.#activate(id, record.directive, path);
    } catch (err) {
      await this.#move(id, "failed", { error_message: (err as Error).message });
    }
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
    this.#deps.publishStatus({
      directive_id: record.directive_id,
      node_id: this.#deps.nodeId,
      reported_at: new Date().toISOString(),
      state: record.state,
      progress_percent: Math.round(record.progress_percent),
      ...(record.error_message ? { error_message: record.error_message } : {}),
      ...(record.instance_id ? { instance_id: record.instance_id } : {}),
    });
  }
}
