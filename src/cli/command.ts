import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { UserError } from "../system/errors.ts";

/** One `loam` command. */
export interface Command {
  name: string;
  /** One line for `loam --help`. */
  summary: string;
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
