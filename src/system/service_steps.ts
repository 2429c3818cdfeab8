import { UserError } from "./errors.ts";

/** One change `loam install` / `loam uninstall` makes, said before it is done. */
export interface InstallStep {
  describe: string;
  run(): Promise<void>;
}

/**
 * Why this process cannot change the system's services, or undefined when it can: it must be
 * root, and systemd must be PID 1 (the test sd_booted() uses: /run/systemd/system exists).
 */
async function systemdRefusal(command: string): Promise<string | undefined> {
  if (Deno.uid() !== 0) return `${command}: must run as root (sudo loam ${command})`;
  const booted = await Deno.stat("/run/systemd/system").then((s) => s.isDirectory, () => false);
  if (!booted) {
    return `${command}: systemd is not running as PID 1 here (no /run/systemd/system); ` +
      "nothing was changed (the steps above are what it would do)";
  }
  return undefined;
}

/** Says the steps on stderr as what would be done ("would 1. ..."), changing nothing. */
export function printPlan(steps: InstallStep[]): void {
  for (const [i, step] of steps.entries()) console.error(`would ${i + 1}. ${step.describe}`);
}

/**
 * Runs the steps in order, saying each on stderr, and stops at the first failure. Where this
 * process cannot change the system's services, it says them as a plan instead and throws a
 * {@link UserError} (exit 1) with the reason.
 */
export async function applySteps(command: string, steps: InstallStep[]): Promise<void> {
  const refusal = await systemdRefusal(command);
  if (refusal) {
    printPlan(steps);
    throw new UserError(refusal, 1);
  }
  for (const [i, step] of steps.entries()) {
    console.error(`${i + 1}. ${step.describe}`);
    await step.run();
  }
}
