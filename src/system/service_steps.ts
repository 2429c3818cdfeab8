/** One change `loam install` / `loam uninstall` makes, said before it is done. */
export interface InstallStep {
  describe: string;
  run(): Promise<void>;
}

/**
 * Why this process cannot change the system's services, or undefined when it can: it must be
 * root, and systemd must be PID 1 (the test sd_booted() uses: /run/systemd/system exists).
 */
export async function systemdRefusal(command: string): Promise<string | undefined> {
  if (Deno.uid() !== 0) return `${command}: must run as root (sudo loam ${command})`;
  const booted = await Deno.stat("/run/systemd/system").then((s) => s.isDirectory, () => false);
  if (!booted) {
    return `${command}: systemd is not running as PID 1 here (no /run/systemd/system); ` +
      "nothing was changed (the steps above are what it would do)";
  }
  return undefined;
}

/** Runs the steps in order, saying each on stderr; stops at the first failure. */
export async function runSteps(steps: InstallStep[]): Promise<void> {
  for (const [i, step] of steps.entries()) {
    console.error(`${i + 1}. ${step.describe}`);
    await step.run();
  }
}
