import type { Logger } from "./logger.ts";

/**
 * Keeps one failure from taking the agent down: a promise rejection nobody handled, or an
 * exception thrown from a timer or an event handler, is logged as an error (with where it came
 * from) instead of ending the process, as Deno does by default. The agent serves many inputs at
 * once; one bad one must cost its own request or deployment, never the node. Returns a function
 * that removes the guard.
 */
export function installCrashGuard(logger: Logger): () => void {
  const onRejection = (event: PromiseRejectionEvent) => {
    event.preventDefault();
    logger.error("unhandled promise rejection (the agent keeps running)", {
      error: event.reason,
    });
  };
  const onError = (event: ErrorEvent) => {
    event.preventDefault();
    logger.error("uncaught exception (the agent keeps running)", {
      error: event.error ?? event.message,
    });
  };
  globalThis.addEventListener("unhandledrejection", onRejection);
  globalThis.addEventListener("error", onError);
  return () => {
    globalThis.removeEventListener("unhandledrejection", onRejection);
    globalThis.removeEventListener("error", onError);
  };
}
