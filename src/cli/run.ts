import type { Command } from "./command.ts";
import { parseFlags, println } from "./command.ts";
import { CONFIG_OPTIONS, CONFIG_OPTIONS_HELP, loadConfigFromFlags } from "./config_flags.ts";
import { createLogger } from "../system/logger.ts";
import { installCrashGuard } from "../system/crash_guard.ts";
import { startAgent } from "../agent/agent.ts";

/** Longest a graceful stop may take before the process exits anyway. */
const STOP_DEADLINE_MS = 5000;

function waitForStopSignal(): Promise<Deno.Signal> {
  return new Promise((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(signal, () => resolve(signal));
    }
  });
}

/** `loam run`: the agent in the foreground until SIGINT/SIGTERM. */
export const runCommand: Command = {
  name: "run",
  help: `Usage: loam run [options]

Starts the agent: creates the data dir, identity and admin token on first start, serves the
local API, and runs until SIGINT or SIGTERM (graceful stop, exit 0 within 5 s).

${CONFIG_OPTIONS_HELP}`,
  async run(args) {
    const parsed = parseFlags("run", args, CONFIG_OPTIONS);
    if (parsed.help) {
      println(this.help);
      return 0;
    }
    const loaded = await loadConfigFromFlags(parsed.values);
    const logger = createLogger(loaded.config.log);
    installCrashGuard(logger);
    const stopSignal = waitForStopSignal();
    const agent = await startAgent(loaded, logger);
    const signal = await stopSignal;
    logger.info("stop requested", { signal });
    const deadline = setTimeout(() => {
      logger.error("graceful stop took longer than 5 s; exiting now");
      Deno.exit(1);
    }, STOP_DEADLINE_MS);
    await agent.stop();
    clearTimeout(deadline);
    return 0;
  },
};
