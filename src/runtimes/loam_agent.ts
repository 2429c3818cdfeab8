import { join } from "node:path";
import type { DeploymentDirective } from "../protocol/directive.ts";
import {
  ActivationRolledBack,
  type Instance,
  type InstanceView,
  type RuntimeAdapter,
} from "./adapter.ts";
import type { Logger } from "../system/logger.ts";
import { normalArch } from "../system/arch.ts";
import { installVersionFile } from "../system/installed_layout.ts";
import { sleep } from "../system/sleep.ts";
import { compareVersions, readLoamFile, targetArch } from "../system/loam_file.ts";
import {
  type BinLayout,
  binLayoutFor,
  linkedVersion,
  pointAt,
  pruneBin,
  readTrial,
  removeTrial,
  type Trial,
  writeTrial,
} from "../system/update_trial.ts";

/** What the agent offers its own update. */
export interface SelfUpdateHost {
  dataDir: string;
  /** The loam file this agent runs from (`LOAM_SELF`); undefined from source. */
  self: string | undefined;
  version: string;
  /** This host's CPU architecture. */
  arch: string;
  /** Resolves once every service of the agent has started. */
  ready(): Promise<void>;
  /** Peers connected now. */
  peerCount(): number;
  /**
   * Stops the agent gracefully and exits with 75 ("restart me"), handing over to the loam file
   * `next`: systemd restarts `current/loam`; without systemd the header's run loop runs `next`.
   */
  restart(next: string): void;
  logger: Logger;
}

/** How often a version on trial looks whether it has rejoined the mesh. */
const CONFIRM_POLL_MS = 250;

/** Resolves never; rejects with the signal's reason once it aborts. */
function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) return reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

/**
 * `loam_agent`: the agent replaces itself with the loam file a directive delivers. The old
 * version checks the file (its header's `--payload-info`: architecture, version, no downgrade
 * unless allowed, payload intact), puts it at `<bin>/<version>/loam`, writes the trial marker,
 * points `current` at it (`previous` at itself) and exits 75. The deployment stays
 * `activating` across the hand-over: the new version resumes it, waits until it is ready and
 * has rejoined the mesh (when the old one had peers) within `timeout_seconds`, then confirms
 * (the marker goes) and reports it `active`. A version that crashes at start, misses its
 * deadline or finds no peers is rolled back (by the file's header, or by itself), and the old
 * version reports the deployment `rolled_back` with the reason.
 */
export class LoamAgentAdapter implements RuntimeAdapter {
  readonly kind = "loam_agent" as const;
  readonly #host: SelfUpdateHost;
  readonly #layout: BinLayout;
  #running?: InstanceView;

  constructor(host: SelfUpdateHost) {
    this.#host = host;
    this.#layout = binLayoutFor(host.dataDir, host.self);
  }

  async activate(
    directive: DeploymentDirective,
    blobPath: string,
    signal: AbortSignal,
  ): Promise<Instance> {
    const type = directive.artifact.artifact_type;
    if (type.type !== "loam_agent") throw new Error(`not a loam file: ${type.type}`);
    const { version } = this.#host;
    const trial = await readTrial(this.#layout);
    const ours = trial?.directive_id === directive.directive_id ? trial : undefined;
    if (ours?.state === "rolled_back" && version === ours.from) {
      await removeTrial(this.#layout);
      throw new ActivationRolledBack(
        `loam ${ours.to} was rolled back: ${ours.reason ?? "no reason recorded"}; ` +
          `running ${ours.from} again`,
      );
    }
    if (ours?.state === "trying" && version === ours.to) {
      await this.#confirm(directive, ours, signal);
    } else if (type.version !== version) {
      await this.#handOver(directive, type.version, type.allow_downgrade, blobPath, signal);
      return await untilAborted(signal); // the agent is stopping to hand over
    }
    return this.#instance(directive);
  }

  /** After a restart, an active record of this version is this very process. */
  resume(directive: DeploymentDirective, instanceId: string): Promise<void> {
    if (instanceId === instanceIdOf(this.#host.version)) this.#instance(directive);
    return Promise.resolve();
  }

  /** An agent cannot stop being itself: the record goes, the running version stays. */
  deactivate(instanceId: string): Promise<void> {
    if (this.#running?.instance_id === instanceId) this.#running = undefined;
    return Promise.resolve();
  }

  list(): InstanceView[] {
    return this.#running ? [this.#running] : [];
  }

  #instance(directive: DeploymentDirective): Instance {
    const instance_id = instanceIdOf(this.#host.version);
    this.#running = {
      instance_id,
      directive_id: directive.directive_id,
      adapter: "loam_agent",
      state: "running",
      provider: null,
      started_at: new Date(Date.now() - performance.now()).toISOString(),
      version: this.#host.version,
    };
    return { instance_id };
  }

  /** Checks the new file, installs it beside this one, writes the trial, flips, restarts. */
  async #handOver(
    directive: DeploymentDirective,
    to: string,
    allowDowngrade: boolean,
    blobPath: string,
    signal: AbortSignal,
  ): Promise<void> {
    const { self, version, arch, logger } = this.#host;
    if (self === undefined) {
      throw new Error(
        "this agent runs from source (deno run main.ts), not from a loam file: it cannot " +
          "replace itself; run a built file (deno task build)",
      );
    }
    const info = await readLoamFile(blobPath).catch((err: Error) => {
      throw new Error(`loam ${to} refused: ${err.message}`);
    });
    const fileArch = normalArch(targetArch(info.target));
    if (fileArch !== normalArch(arch)) {
      throw new Error(`loam ${to} refused: the file is for ${fileArch}, this node is ${arch}`);
    }
    if (info.version !== to) {
      throw new Error(`loam ${to} refused: the file is loam ${info.version}, not ${to}`);
    }
    if (compareVersions(to, version) < 0 && !allowDowngrade) {
      throw new Error(
        `loam ${to} refused: older than the running ${version} (set allow_downgrade to go back)`,
      );
    }
    const layout = this.#layout;
    await installVersionFile(blobPath, join(layout.binDir, to));
    // a file run by hand is not in the layout yet: previous must be a file that can run
    if (await linkedVersion(layout.current) !== version) {
      await installVersionFile(self, join(layout.binDir, version));
    }
    signal.throwIfAborted();
    await writeTrial(layout, {
      directive_id: directive.directive_id,
      from: version,
      to,
      deadline: Date.now() / 1000 + directive.options.timeout_seconds,
      starts: 0,
      peers: this.#host.peerCount() > 0,
      state: "trying",
    });
    await pointAt(layout, layout.previous, version);
    await pointAt(layout, layout.current, to);
    logger.info("handing over to a new version", {
      directive_id: directive.directive_id,
      from: version,
      to,
      file: join(layout.binDir, to, "loam"),
    });
    this.#host.restart(join(layout.current, "loam"));
  }

  /**
   * This version is on trial: it passes once the agent is ready and, when the old version had
   * peers, has one again, before the deadline; then the marker goes and old versions are
   * pruned. Past the deadline it rolls itself back (the marker says why) and hands over to the
   * version it replaced.
   */
  async #confirm(directive: DeploymentDirective, trial: Trial, signal: AbortSignal) {
    const { logger } = this.#host;
    const layout = this.#layout;
    const deadline = trial.deadline * 1000;
    const passed = async () => {
      await this.#host.ready();
      while (trial.peers && this.#host.peerCount() === 0) {
        if (Date.now() >= deadline) return false;
        await sleep(CONFIRM_POLL_MS, signal);
      }
      return Date.now() < deadline;
    };
    if (await passed()) {
      await removeTrial(layout);
      const pruned = await pruneBin(layout).catch((err) => {
        logger.warn("old versions not pruned", { error: err });
        return [];
      });
      logger.info("new version confirmed", {
        directive_id: directive.directive_id,
        from: trial.from,
        version: trial.to,
        pruned,
      });
      return;
    }
    const seconds = directive.options.timeout_seconds;
    const reason = trial.peers
      ? `no peers within ${seconds} s (the old version had some)`
      : `not ready within ${seconds} s`;
    await writeTrial(layout, { ...trial, state: "rolled_back", reason });
    await pointAt(layout, layout.current, trial.from);
    await pointAt(layout, layout.previous, trial.to);
    logger.warn("new version rolled back", { directive_id: directive.directive_id, reason });
    this.#host.restart(join(layout.current, "loam"));
    await untilAborted(signal);
  }
}

/** The instance id of a running loam version. */
function instanceIdOf(version: string): string {
  return `loam-agent-${version}`;
}
