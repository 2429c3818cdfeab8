import type { Command } from "./command.ts";
import { parseFlags, println } from "./command.ts";
import { UNIT_PATH } from "./install.ts";
import { INSTALLED } from "../system/installed_layout.ts";

/** Where a self-extracting loam installed as a service unpacks (the unit's LOAM_RUNTIME_DIR). */
const RUNTIME_DIR = "/var/lib/loam/runtime";
import { applySteps, type InstallStep, printPlan } from "../system/service_steps.ts";

const DATA_DIRS = ["/var/lib/loam", "/etc/loam"];

const HELP = `Usage: loam uninstall [--purge] [--dry-run]

Stops and disables the loam service, removes ${UNIT_PATH}, ${INSTALLED.pathLink}, the installed
files (${INSTALLED.binDir}) and their extracted runtime (${RUNTIME_DIR}); data stays.
Data (/var/lib/loam: identity, tokens, blobs, deployments) and /etc/loam are kept unless --purge.

Options:
  --purge     also remove ${DATA_DIRS.join(" and ")}
  --dry-run   print the steps; change nothing`;

/** Runs a systemctl verb, tolerating a unit that is already gone. */
async function systemctl(args: string[]): Promise<void> {
  await new Deno.Command("systemctl", { args, stdout: "null", stderr: "null" }).output();
}

const removeIfThere = (path: string, recursive = false) => () =>
  Deno.remove(path, { recursive }).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });

/** `loam uninstall`: undoes `loam install`. */
export const uninstallCommand: Command = {
  name: "uninstall",
  help: HELP,
  async run(args) {
    const parsed = parseFlags("uninstall", args, {
      purge: { type: "boolean" },
      "dry-run": { type: "boolean" },
    });
    if (parsed.help) {
      println(HELP);
      return 0;
    }
    const steps: InstallStep[] = [
      {
        describe: "systemctl disable --now loam",
        run: () => systemctl(["disable", "--now", "loam"]),
      },
      { describe: `remove ${UNIT_PATH}`, run: removeIfThere(UNIT_PATH) },
      { describe: "systemctl daemon-reload", run: () => systemctl(["daemon-reload"]) },
      { describe: `remove ${INSTALLED.pathLink}`, run: removeIfThere(INSTALLED.pathLink) },
      // the installed files and their extracted runtimes are not data
      { describe: `remove ${INSTALLED.binDir}`, run: removeIfThere(INSTALLED.binDir, true) },
      { describe: `remove ${RUNTIME_DIR}`, run: removeIfThere(RUNTIME_DIR, true) },
      ...(parsed.values.purge
        ? DATA_DIRS.map((dir) => ({ describe: `remove ${dir}`, run: removeIfThere(dir, true) }))
        : []),
    ];
    if (parsed.values["dry-run"]) {
      printPlan(steps);
      return 0;
    }
    await applySteps("uninstall", steps);
    println(
      parsed.values.purge
        ? "loam removed, data purged"
        : "loam removed; data kept in /var/lib/loam",
    );
    return 0;
  },
};
