/**
 * loam: a single-binary edge agent. Entry point: parses argv and dispatches a command.
 * @module
 */
import { COMMANDS } from "./src/cli/commands.ts";
import { EXIT_USAGE, UserError } from "./src/system/errors.ts";

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
  if (name === undefined) {
    console.error(overview()); // a usage error: to stderr, exit 2
    return EXIT_USAGE;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    const topic = name === "help" ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    console.log(topic ? (await topic.load()).help : overview());
    return 0;
  }
  const version = name === "--version" || name === "-V";
  const entry = COMMANDS.find((c) => c.name === (version ? "version" : name));
  if (!entry) throw new UserError(`unknown command "${name}"\n\n${overview()}`);
  return await (await entry.load()).run(version ? [] : rest);
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
