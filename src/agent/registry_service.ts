import { Counter, type Registry } from "prom-client";
import { RegistryStore } from "../registry/registry_store.ts";
import type { Config } from "../config/schema.ts";
import type { DataPaths } from "../system/paths.ts";
import type { Logger } from "../system/logger.ts";
import type { IdentityService } from "./identity_service.ts";
import type { Service } from "./service.ts";

/** What the registry service is built from. */
export interface RegistryServiceOptions {
  config: Config;
  paths: DataPaths;
  identity: IdentityService;
  registry: Registry;
  logger: Logger;
}

/**
 * The model and agent registry, loaded (every document verified again) once the identity is
 * known: this node signs its own entries with it. A registry file that cannot be read is moved
 * aside and the node starts with an empty registry, which peers fill again: one bad file never
 * keeps the agent from starting.
 */
export class RegistryService implements Service {
  readonly name = "registry";
  readonly #o: RegistryServiceOptions;
  #store?: RegistryStore;

  constructor(options: RegistryServiceOptions) {
    this.#o = options;
  }

  async start(): Promise<void> {
    const { config, paths, identity, logger } = this.#o;
    const rejected = new Counter({
      name: "loam_registry_rejected_total",
      help: "Registry documents refused: invalid, oversized, not signed by the owner, or past " +
        "the owner's limit.",
      labelNames: ["reason"],
      registers: [this.#o.registry],
    });
    const options = {
      path: paths.registry,
      self: identity.identity.peerId,
      privateKey: identity.identity.privateKey,
      maxEntriesPerOwner: config.registry.max_entries_per_owner,
      maxDocumentBytes: config.registry.max_entry_bytes,
      moderators: config.mesh.trusted_issuers,
      onRejected: (reason: string) => rejected.inc({ reason }),
    };
    try {
      this.#store = await RegistryStore.open(options);
    } catch (err) {
      const aside = `${paths.registry}.bad-${Date.now()}`;
      await Deno.rename(paths.registry, aside).catch(() => {});
      logger.error("registry file unreadable: moved aside, starting empty", {
        error: (err as Error).message,
        moved_to: aside,
      });
      this.#store = await RegistryStore.open(options);
    }
  }

  async stop(): Promise<void> {
    await this.#store?.flushed();
  }

  /** The started registry. */
  get store(): RegistryStore {
    if (!this.#store) throw new Error("the registry is opened at start");
    return this.#store;
  }
}
