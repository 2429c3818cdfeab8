import assert from "node:assert/strict";
import { installCrashGuard } from "./crash_guard.ts";
import { createLogger } from "./logger.ts";
import { sleep } from "./sleep.ts";

Deno.test("an unhandled rejection and an exception in a timer are logged, not fatal", async () => {
  const lines: string[] = [];
  const logger = createLogger({ level: "info", format: "json", write: (l) => lines.push(l) });
  const remove = installCrashGuard(logger);
  try {
    void Promise.reject(new Error("nobody handles this"));
    setTimeout(() => {
      throw new Error("thrown in a timer");
    }, 0);
    await sleep(50);
  } finally {
    remove();
  }
  const text = lines.join("\n");
  assert.match(text, /unhandled promise rejection.*nobody handles this/);
  assert.match(text, /uncaught exception.*thrown in a timer/);
});
