import type { Config } from "../config/schema.ts";
import { type Identity, loadOrCreateIdentity } from "../mesh/identity.ts";
import { type FleetKey, readFleetKey } from "../mesh/fleet_key.ts";
import { TokenStore } from "../api/tokens.ts";
import type { DataPaths } from "../system/paths.ts";
import type { Logger } from "../system/logger.ts";
import type { Service } from "./service.ts";

/** Warns when a secret file can be read by other accounts (a copy made without `cp -p`, say). */
async function warnIfLoose(path: string, logger: Logger): Promise<void> {
  try {
    const mode = (await Deno.stat(path)).mode;
    if (mode !== null && (mode & 0o077) !== 0) {
      logger.warn("secret file is readable by other users; run chmod 600 on it", {
        path,
        mode: `0${(mode & 0o777).toString(8)}`,
      });
    }
  } catch {
    // absent files are not loose
  }
}

/**
 * Who this node is and who may talk to it: the Ed25519 identity (created on first start), the
 * fleet key that admits peers to the mesh, and the API tokens (the admin token created on first
 * start). Read once at start; everything after it reads them from here.
 */
export class IdentityService implements Service {
  readonly name = "identity";
  readonly #config: Config;
  readonly #paths: DataPaths;
  readonly #logger: Logger;
  #identity?: Identity;
  #fleetKey?: FleetKey;
  /** The API tokens (hashed on disk). */
  readonly tokens: TokenStore;

  constructor(config: Config, paths: DataPaths, logger: Logger) {
    this.#config = config;
    this.#paths = paths;
    this.#logger = logger;
    this.tokens = new TokenStore(paths.tokens);
  }

  /** @throws a UserError naming the file when the fleet key or the identity key is unusable. */
  async start(): Promise<void> {
    const file = this.#config.mesh.fleet_key_file;
    this.#fleetKey = file === undefined ? undefined : await readFleetKey(file);
    const { identity, created } = await loadOrCreateIdentity(this.#paths.identityKey);
    this.#identity = identity;
    this.#logger.info(created ? "identity created" : "identity loaded", {
      peer_id: identity.peerId,
      path: this.#paths.identityKey,
    });
    if (this.#fleetKey) {
      this.#logger.info("fleet key loaded: only peers holding it can join the mesh", {
        fleet_key: this.#fleetKey.fingerprint,
      });
    } else {
      this.#logger.warn(
        "the mesh is open: anyone who can reach the mesh port can join, read adverts and fetch " +
          "blobs; set mesh.fleet_key_file (make one with loam keys fleet)",
        { listen: this.#config.mesh.listen },
      );
    }
    if (await this.tokens.ensureAdmin(this.#paths.adminToken)) {
      this.#logger.info("admin token created", { path: this.#paths.adminToken });
    }
    await this.tokens.refresh();
    await warnIfLoose(this.#paths.adminToken, this.#logger);
    await warnIfLoose(this.#paths.tokens, this.#logger);
  }

  /** Nothing to release: the keys stay on disk. */
  stop(): Promise<void> {
    return Promise.resolve();
  }

  /** This node's key pair and peer id. */
  get identity(): Identity {
    if (!this.#identity) throw new Error("the identity is read at start");
    return this.#identity;
  }

  /** The fleet key, when `mesh.fleet_key_file` is set; undefined means an open mesh. */
  get fleetKey(): FleetKey | undefined {
    return this.#fleetKey;
  }
}
