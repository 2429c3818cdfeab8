/** Severity of a log line, lowest first. */
export type LogLevel = "debug" | "info" | "warn" | "error";
/** How log lines are written: `human` text, `json` lines, or `auto` (human on a TTY, else json). */
export type LogFormat = "auto" | "human" | "json";

/** Structured fields attached to a log line. */
export type LogFields = Record<string, unknown>;

/** A structured logger writing one line per event. */
export interface Logger {
  /** Logs at debug level. */
  debug(msg: string, fields?: LogFields): void;
  /** Logs at info level. */
  info(msg: string, fields?: LogFields): void;
  /** Logs at warn level. */
  warn(msg: string, fields?: LogFields): void;
  /** Logs at error level. */
  error(msg: string, fields?: LogFields): void;
  /** Returns a logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
}

const LEVEL_RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  level: LogLevel;
  format: LogFormat;
  /** Where lines go; defaults to standard error. */
  write?: (line: string) => void;
}

function writeStderr(line: string): void {
  const bytes = new TextEncoder().encode(line);
  let written = 0;
  while (written < bytes.length) written += Deno.stderr.writeSync(bytes.subarray(written));
}

function humanValue(value: unknown): string {
  if (typeof value === "string") return /[\s"=]/.test(value) ? JSON.stringify(value) : value;
  if (value instanceof Error) return JSON.stringify(value.message);
  return JSON.stringify(value) ?? String(value);
}

/** Creates a logger; `auto` format picks human lines on a TTY and JSON lines otherwise. */
export function createLogger(options: LoggerOptions): Logger {
  const write = options.write ?? writeStderr;
  const json = options.format === "json" ||
    (options.format === "auto" && !Deno.stderr.isTerminal());
  const threshold = LEVEL_RANK[options.level];

  const make = (base: LogFields): Logger => {
    const emit = (level: LogLevel, msg: string, fields: LogFields = {}) => {
      if (LEVEL_RANK[level] < threshold) return;
      const all = { ...base, ...fields };
      const ts = new Date().toISOString();
      if (json) {
        const plain = Object.fromEntries(
          Object.entries(all).map(([k, v]) => [k, v instanceof Error ? v.message : v]),
        );
        write(JSON.stringify({ ts, level, msg, ...plain }) + "\n");
      } else {
        const extra = Object.entries(all).map(([k, v]) => ` ${k}=${humanValue(v)}`).join("");
        write(`${ts} ${level.toUpperCase().padEnd(5)} ${msg}${extra}\n`);
      }
    };
    return {
      debug: (msg, fields) => emit("debug", msg, fields),
      info: (msg, fields) => emit("info", msg, fields),
      warn: (msg, fields) => emit("warn", msg, fields),
      error: (msg, fields) => emit("error", msg, fields),
      child: (fields) => make({ ...base, ...fields }),
    };
  };
  return make({});
}
