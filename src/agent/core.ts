import type { Config } from "../config/schema.ts";
import type { DataPaths } from "../system/paths.ts";
import type { Logger } from "../system/logger.ts";
import type { IdentityService } from "./identity_service.ts";
import type { StoreService } from "./store_service.ts";
import type { RuntimesService } from "./runtimes_service.ts";

/**
 * What every service after the first three is built from: the config, the data dir, the logger,
 * and the services that start before any other (store, identity, runtimes). A later service adds
 * the ones it needs beyond these in its own options.
 */
export interface AgentCore {
  config: Config;
  paths: DataPaths;
  logger: Logger;
  store: StoreService;
  identity: IdentityService;
  runtimes: RuntimesService;
}
