import type { Command } from "./command.ts";
import { parseFlags, println } from "./command.ts";
import { CONFIG_OPTIONS, CONFIG_OPTIONS_HELP, loadConfigFromFlags } from "./config_flags.ts";
import { createLogger, type Logger } from "../system/logger.ts";
import { installCrashGuard } from "../system/crash_guard.ts";
import { startAgent } from "../agent/agent.ts";

/** Longest a graceful stop may take before the process exits anyway. */
const STOP_DEADLINE_MS = 5000;

/** How often the agent looks whether the loam file's run loop that started it is still there. */
const SUPERVISOR_CHECK_MS = 1000;

/**
 * SIGINT or SIGTERM, or the loss of the run loop that started this agent (a loam file run
 * without systemd stays the agent's parent, `LOAM_SUPERVISOR_PID`): killed with -9, it cannot
 * pass a signal on, and an agent left behind would hold the data dir and ports.
 */
function waitForStopSignal(): Promise<string> {
  return new Promise((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(signal, () => resolve(signal));
    }
    const supervisor = Number(Deno.env.get("LOAM_SUPERVISOR_PID"));
    if (Number.isInteger(supervisor) && supervisor > 1 && Deno.ppid === supervisor) {
      const timer = setInterval(() => {
        if (Deno.ppid === supervisor) return;
        clearInterval(timer);
        resolve("the loam file's run loop is gone");
      }, SUPERVISOR_CHECK_MS);
      Deno.unrefTimer(timer);
    }
  });
}

/** "Restart me": systemd's `RestartForceExitStatus=75`, and the file's own run loop. */
const EXIT_RESTART = 75;

/**
 * Tells the loam file's run loop (`LOAM_HANDOVER`, set by its header when no systemd restarts
 * it) which file to run next; under systemd the unit runs `current/loam` again by itself.
 */
async function handOverTo(next: string, logger: Logger): Promise<void> {
  const handover = Deno.env.get("LOAM_HANDOVER");
  if (!handover) return;
  await Deno.writeTextFile(handover, `${next}\n`).catch((err) =>
    logger.error("the next version could not be handed over", { file: handover, error: err })
  );
}

/** `loam run`: the agent in the foreground until SIGINT/SIGTERM. */
export const runCommand: Command = {
  name: "run",
  help: `Usage: loam run [options]

Starts the agent: creates the data dir, identity and admin token on first start, serves the
local API, and runs until SIGINT or SIGTERM (graceful stop, exit 0 within 5 s). After a
self-update (a loam_agent deployment) it stops the same way and exits 75: systemd, or the loam
file's own run loop, starts the new version.

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
    const why = await Promise.race([
      stopSignal.then((signal) => ({ signal, next: undefined })),
      agent.handOver.then((next) => ({ signal: undefined, next })),
    ]);
    if (why.next) logger.info("restarting into a new version", { next: why.next });
    else logger.info("stop requested", { signal: why.signal });
    const deadline = setTimeout(() => {
      logger.error("graceful stop took longer than 5 s; exiting now");
      Deno.exit(1);
    }, STOP_DEADLINE_MS);
    await agent.stop();
    clearTimeout(deadline);
    if (why.next === undefined) return 0;
    await handOverTo(why.next, logger);
    return EXIT_RESTART;
  },
};
