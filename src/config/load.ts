/**
 * @module
 * Configuration: defaults < TOML < `LOAM_*` environment < flags, validated by the zod schema in
 * schema.ts; an error names the key, the value and why.
 */

import { parse as parseToml } from "smol-toml";
import { type Config, ConfigSchema } from "./schema.ts";
import { coerceText, configKeys, envNameFor, keyType } from "./keys.ts";
import { UserError } from "../system/errors.ts";

/** The config file read when neither `--config` nor `$LOAM_CONFIG` names one (if it exists). */
const DEFAULT_CONFIG_PATH = "/etc/loam/loam.toml";

/** Environment variables starting with LOAM_ that are not config keys. */
const NON_KEY_ENV = new Set([
  "LOAM_CONFIG",
  // set for (or by) a self-extracting loam file: where it extracts, itself, its payload
  "LOAM_RUNTIME_DIR",
  "LOAM_SELF",
  "LOAM_PAYLOAD_DIR",
  // set by its run loop (no systemd): where to name the next file, and the loop's pid
  "LOAM_HANDOVER",
  "LOAM_SUPERVISOR_PID",
]);

/** A config value given on the command line. */
export interface FlagSetting {
  /** `section.key`. */
  key: string;
  /** The text as typed. */
  value: string;
  /** How the user gave it, for error messages (e.g. `--api-listen`). */
  flag: string;
}

/** Inputs for {@link loadConfig}. */
export interface ConfigInputs {
  /** Path from `--config`; overrides `$LOAM_CONFIG`. */
  configPath?: string;
  /** The process environment (only LOAM_* matter). */
  env: Record<string, string>;
  /** Flag settings, highest precedence. */
  flags: FlagSetting[];
}

/** A validated config and where each value came from. */
export interface LoadedConfig {
  config: Config;
  /** The config file read, if any. */
  configFile?: string;
  /** `section.key` → `file <path>`, `env LOAM_…`, `flag --…`; absent = default. */
  sources: Record<string, string>;
}

type Tree = Record<string, Record<string, unknown>>;

function setIn(tree: Tree, dotted: string, value: unknown): void {
  const parts = dotted.split(".");
  const key = parts.pop()!;
  let node = tree as Record<string, unknown>;
  for (const part of parts) {
    const next = node[part];
    node = (node[part] = next !== null && typeof next === "object" && !Array.isArray(next)
      ? next
      : {}) as Record<string, unknown>;
  }
  node[key] = value;
}

async function readConfigFile(path: string): Promise<Tree> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new UserError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = parseToml(text);
  } catch (err) {
    const first = (err as Error).message.split("\n")[0];
    throw new UserError(`config file ${path} is not valid TOML: ${first}`);
  }
  const tree = parsed as Record<string, unknown>;
  for (const [section, value] of Object.entries(tree)) {
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new UserError(
        `config file ${path}: top-level key "${section}" must be a [section] table`,
      );
    }
  }
  return tree as Tree;
}

async function fileExists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw new UserError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
}

/**
 * The value as the user gave it. JSON would print a number TOML reads as infinite or NaN
 * (`1e400`, `inf`, `nan`) as `null`, so those print as `Infinity`, `-Infinity` and `NaN`.
 */
function describeValue(tree: Tree, path: PropertyKey[]): string {
  let value: unknown = tree;
  for (const part of path) value = (value as Record<PropertyKey, unknown> | undefined)?.[part];
  if (value === undefined) return "(missing)";
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  return JSON.stringify(value);
}

/**
 * Loads the configuration: defaults < TOML file < LOAM_* environment < flags, validated with
 * zod. Any problem throws a {@link UserError} naming the key, the value, its source and why.
 */
export async function loadConfig(inputs: ConfigInputs): Promise<LoadedConfig> {
  const sources: Record<string, string> = {};
  const explicitPath = inputs.configPath ?? inputs.env["LOAM_CONFIG"];
  let configFile: string | undefined;
  let tree: Tree = {};
  if (explicitPath !== undefined) {
    configFile = explicitPath;
  } else if (await fileExists(DEFAULT_CONFIG_PATH)) {
    configFile = DEFAULT_CONFIG_PATH;
  }
  if (configFile !== undefined) {
    tree = await readConfigFile(configFile);
    for (const [section, values] of Object.entries(tree)) {
      for (const key of Object.keys(values)) sources[`${section}.${key}`] = `file ${configFile}`;
    }
  }

  const envByName = new Map(configKeys().map((k) => [envNameFor(k), k]));
  for (const [name, text] of Object.entries(inputs.env)) {
    if (!name.startsWith("LOAM_") || NON_KEY_ENV.has(name)) continue;
    const key = envByName.get(name);
    if (key === undefined) {
      throw new UserError(
        `environment variable ${name} is not a loam setting (known: ${
          [...envByName.keys(), ...NON_KEY_ENV].join(", ")
        })`,
      );
    }
    setIn(tree, key, coerceText(key, text));
    sources[key] = `env ${name}`;
  }

  for (const setting of inputs.flags) {
    if (keyType(setting.key) === undefined) {
      throw new UserError(`${setting.flag}: unknown config key "${setting.key}"`);
    }
    setIn(tree, setting.key, coerceText(setting.key, setting.value));
    sources[setting.key] = `flag ${setting.flag}`;
  }

  const result = ConfigSchema.safeParse(tree);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    if (issue.code === "unrecognized_keys") {
      const names = issue.keys.map((k) => [...issue.path, k].join("."));
      const where = configFile ? ` in ${configFile}` : "";
      throw new UserError(
        `unknown config key${names.length > 1 ? "s" : ""} ${
          names.map((n) => `"${n}"`).join(", ")
        }${where} (known keys: ${configKeys().join(", ")})`,
      );
    }
    const dotted = issue.path.join(".");
    // the most specific place the value came from: the key itself, else its table in a file
    const source = [3, 2].map((n) => sources[issue.path.slice(0, n).join(".")])
      .find((s) => s !== undefined) ?? "default";
    throw new UserError(
      `invalid config value ${dotted} = ${
        describeValue(tree, issue.path)
      } (from ${source}): ${issue.message}`,
    );
  }
  return { config: result.data, configFile, sources };
}
