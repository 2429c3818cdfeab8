/**
 * @module
 * The lifecycle every part of the agent shares (after js-libp2p's `Startable`): the composition
 * root builds the services first, with no I/O, then starts them in order and stops them in
 * reverse, so a later service may use an earlier one from its `start()` on.
 */

import type { Logger } from "../system/logger.ts";

/** One part of the running agent. */
export interface Service {
  /** Names the service in the log when it fails to start or stop. */
  readonly name: string;
  /** Does the I/O the service needs; throws when it cannot run. */
  start(): Promise<void>;
  /** Releases what `start` took. Called once, only after `start` resolved. */
  stop(): Promise<void>;
}

/**
 * Starts `services` one after the other. When one fails, the ones already started are stopped in
 * reverse before the error goes on, so a failed start leaves no port bound and no process
 * running. Resolves with the function that stops them all, in reverse.
 *
 * @throws the first start's error, after the rollback.
 */
export async function startInOrder(
  services: readonly Service[],
  logger: Logger,
): Promise<() => Promise<void>> {
  const started: Service[] = [];
  const stopAll = async () => {
    for (const service of started.splice(0).reverse()) {
      await service.stop().catch((err) =>
        logger.error("service did not stop cleanly", { service: service.name, error: err })
      );
    }
  };
  for (const service of services) {
    try {
      await service.start();
    } catch (err) {
      logger.debug("service failed to start; stopping the ones started", {
        service: service.name,
        started: started.map((s) => s.name),
      });
      await stopAll();
      throw err;
    }
    started.push(service);
  }
  return stopAll;
}
