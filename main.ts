/**
 * loam: a single-binary edge agent. Entry point: parses argv and dispatches a command.
 * @module
 */
import type { Command } from "./src/cli/command.ts";
import { runCommand } from "./src/cli/run.ts";
import { statusCommand } from "./src/cli/status.ts";
import { tokenCommand } from "./src/cli/token.ts";
import { fetchCommand } from "./src/cli/fetch.ts";
import { blobsCommand } from "./src/cli/blobs.ts";
import { keysCommand } from "./src/cli/keys.ts";
import { configCommand } from "./src/cli/config.ts";
import { versionCommand } from "./src/cli/version.ts";
import { EXIT_USAGE, UserError } from "./src/system/errors.ts";

const COMMANDS: Command[] = [
  runCommand,
  statusCommand,
  fetchCommand,
  blobsCommand,
  tokenCommand,
  keysCommand,
  configCommand,
  versionCommand,
];

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "loam: edge agent for fleets of AI boxes",
    "",
    "Usage: loam <command> [options]     (loam <command> --help for details)",
    "",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
  ].join("\n");
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    const topic = name === "help" ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    console.log(topic ? topic.help : overview());
    return name === undefined ? EXIT_USAGE : 0;
  }
  if (name === "--version") return versionCommand.run([]);
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) throw new UserError(`unknown command "${name}"\n\n${overview()}`);
  return await command.run(rest);
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (err) {
    if (err instanceof UserError) {
      console.error(`loam: ${err.message}`);
      code = err.exitCode;
    } else {
      console.error(`loam: internal error: ${(err as Error)?.stack ?? err}`);
      code = 1;
    }
  }
  Deno.exit(code);
}
