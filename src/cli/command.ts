import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { UserError } from "../system/errors.ts";

/** One `loam` command. */
export interface Command {
  name: string;
  /** Full help text printed by `--help`. */
  help: string;
  /** Runs the command with the arguments after its name; resolves to the exit code. */
  run(args: string[]): Promise<number>;
}

/** Parsed flags and positionals, or `help` when `--help`/`-h` was given. */
export type Parsed<T extends ParseArgsOptionsConfig> =
  | { help: true }
  | {
    help: false;
    values: ReturnType<typeof parseArgs<{ options: T; allowPositionals: true }>>["values"];
    positionals: string[];
  };

/**
 * Parses `args` strictly with node:util parseArgs; unknown flags, missing values and more than
 * `maxPositionals` arguments become a {@link UserError}.
 */
export function parseFlags<T extends ParseArgsOptionsConfig>(
  commandName: string,
  args: string[],
  options: T,
  maxPositionals = 0,
): Parsed<T> {
  if (args.includes("--help") || args.includes("-h")) return { help: true };
  try {
    const { values, positionals } = parseArgs({
      args,
      options,
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length > maxPositionals) {
      throw new Error(`unexpected argument "${positionals[maxPositionals]}"`);
    }
    return { help: false, values, positionals };
  } catch (err) {
    throw new UserError(
      `${commandName}: ${(err as Error).message} (see: loam ${commandName} --help)`,
    );
  }
}

/** Writes a line to standard output. */
export function println(text = ""): void {
  console.log(text);
}

/** The chosen action of a multi-action command and its parsed flags, or the exit code to return. */
export type ActionParsed<K extends string, T extends ParseArgsOptionsConfig> =
  | { exit: number }
  | {
    exit?: undefined;
    action: K;
    values: ReturnType<typeof parseArgs<{ options: T; allowPositionals: true }>>["values"];
    positionals: string[];
  };

/**
 * For commands with actions (`loam token create …`): no action prints `help` to stderr (exit 2),
 * `--help` prints it to stdout (exit 0), an unknown action is a {@link UserError}; otherwise the action's flags are
 * parsed, allowing `maxPositionals[action]` arguments.
 */
export function parseAction<K extends string, T extends ParseArgsOptionsConfig>(
  commandName: string,
  help: string,
  args: string[],
  maxPositionals: Record<K, number>,
  options: T,
): ActionParsed<K, T> {
  const [action, ...rest] = args;
  if (action === undefined) {
    console.error(help); // a usage error: to stderr, exit 2
    return { exit: 2 };
  }
  if (action === "--help" || action === "-h") {
    println(help);
    return { exit: 0 };
  }
  const actions = Object.keys(maxPositionals) as K[];
  const known = actions.find((a) => a === action);
  if (known === undefined) {
    throw new UserError(`${commandName}: unknown action "${action}" (${actions.join(", ")})`);
  }
  const parsed = parseFlags(`${commandName} ${known}`, rest, options, maxPositionals[known]);
  if (parsed.help) {
    println(help);
    return { exit: 0 };
  }
  return { action: known, values: parsed.values, positionals: parsed.positionals };
}
