import type { Logger } from "../system/logger.ts";

/**
 * Runs an activation's `work` for an instance whose files live in `dir`, keeping the contract of
 * `RuntimeAdapter.activate` on abort: when `signal` has aborted by the time `work` fails (the
 * supervisor stops its process on abort), `dir` is removed and the activation rejects with the
 * signal's reason, so that the engine frees the deployment's slot only once nothing is left.
 * @throws the signal's reason when aborted, else what `work` threw
 */
export async function abortableActivation<T>(
  dir: string,
  signal: AbortSignal,
  log: Logger,
  work: () => Promise<T>,
): Promise<T> {
  signal.throwIfAborted();
  try {
    return await work();
  } catch (err) {
    if (!signal.aborted) throw err;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    log.info("activation stopped", { reason: signal.reason });
    throw signal.reason;
  }
}
