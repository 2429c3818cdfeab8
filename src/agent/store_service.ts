import type { Config } from "../config/schema.ts";
import { BlobStore } from "../blobs/store.ts";
import { type FetchSettings, fetchSettings } from "../blobs/fetcher.ts";
import { freeDiskForStart } from "../blobs/gc.ts";
import { DeploymentRecords, SeenDirectives } from "../deploy/records.ts";
import { DirectiveArchive } from "../deploy/directive_archive.ts";
import { TERMINAL_STATES } from "../protocol/status.ts";
import { type DataPaths, ensureDataDir } from "../system/paths.ts";
import type { Logger } from "../system/logger.ts";
import type { Service } from "./service.ts";

/**
 * What the agent keeps on disk: the data dir itself, the verified blobs, the deployment records,
 * the archive of signed orders and the replay list. Loaded at start, each unreadable entry
 * logged and skipped (one bad file never keeps the agent from starting), and on a full disk the
 * partial downloads no deployment resumes are removed first.
 */
export class StoreService implements Service {
  readonly name = "store";
  readonly #config: Config;
  readonly #paths: DataPaths;
  readonly #sharedInstances: boolean;
  readonly #logger: Logger;
  /** Verified blobs by SHA-256. */
  readonly blobs: BlobStore;
  /** Deployment records, one file each. */
  readonly records: DeploymentRecords;
  /** Directive ids already taken (replay protection). */
  readonly seen: SeenDirectives;
  /** Signed orders kept for nodes that join late. */
  readonly archive: DirectiveArchive;
  #settings?: FetchSettings;

  /** `sharedInstances`: native workloads run as another account (see `ensureDataDir`). */
  constructor(config: Config, paths: DataPaths, sharedInstances: boolean, logger: Logger) {
    this.#config = config;
    this.#paths = paths;
    this.#sharedInstances = sharedInstances;
    this.#logger = logger;
    this.blobs = new BlobStore(paths.blobs);
    this.records = new DeploymentRecords(paths.deployments);
    this.seen = new SeenDirectives(paths.seenDirectives);
    this.archive = new DirectiveArchive({
      dir: paths.directives,
      ttlHours: config.deploy.directive_ttl_hours,
      trustedIssuers: config.mesh.trusted_issuers,
      maxMessageBytes: config.mesh.max_message_bytes,
      logger,
    });
  }

  /** @throws a UserError naming the path when the data dir or `fetch.ca_file` is unusable. */
  async start(): Promise<void> {
    const logger = this.#logger;
    await ensureDataDir(this.#paths, this.#sharedInstances);
    await this.blobs.init();
    this.#settings = await fetchSettings(this.#config);
    for (const problem of await this.records.load()) {
      logger.error("deployment record skipped", { problem });
    }
    const resumed = this.records.list().filter((r) => !TERMINAL_STATES.includes(r.state))
      .map((r) => r.directive.artifact.blob_hash.slice("sha256:".length));
    const reserve = this.#settings.diskReserveBytes;
    for (const freed of await freeDiskForStart(this.blobs, new Set(resumed), reserve)) {
      logger.warn("disk is full: removed a partial download no deployment resumes", freed);
    }
    for (const problem of await this.archive.load()) {
      logger.warn("archived directive dropped", { problem });
    }
    const seenProblem = await this.seen.load();
    if (seenProblem) logger.error("replay-protection file skipped", { problem: seenProblem });
  }

  /** Nothing to release: every write is atomic and already on disk. */
  stop(): Promise<void> {
    return Promise.resolve();
  }

  /** How blobs are fetched (`[fetch]`, `[blobs]`, the CA file read at start). */
  get fetchSettings(): FetchSettings {
    if (!this.#settings) throw new Error("the fetch settings are read at start");
    return this.#settings;
  }
}
