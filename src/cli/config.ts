import { stringify as toToml } from "smol-toml";
import type { Command } from "./command.ts";
import { parseAction, println } from "./command.ts";
import { CONFIG_OPTIONS, CONFIG_OPTIONS_HELP, loadConfigFromFlags } from "./config_flags.ts";
import { redactSecrets } from "../config/redact.ts";
import { resolveDataDir } from "../system/paths.ts";

const HELP = `Usage: loam config print [--json] [options]

Prints the effective configuration (defaults, file, LOAM_* env and flags merged and validated),
secrets redacted, with the source of each value. Exit 2 with one message when it is invalid.

${CONFIG_OPTIONS_HELP}`;

/** `loam config print`: the effective configuration. */
export const configCommand: Command = {
  name: "config",
  help: HELP,
  async run(args) {
    const parsed = parseAction("config", HELP, args, { print: 0 }, {
      ...CONFIG_OPTIONS,
      json: { type: "boolean" },
    });
    if (parsed.exit !== undefined) return parsed.exit;
    const loaded = await loadConfigFromFlags(parsed.values);
    const shown = redactSecrets(loaded.config);
    if (parsed.values.json) {
      println(JSON.stringify(shown, null, 2));
      return 0;
    }
    const lines = [
      `# config file: ${loaded.configFile ?? "none"}`,
      `# data dir: ${resolveDataDir(loaded.config.data.dir)}`,
    ];
    const table = (name: string, values: Record<string, unknown>) => {
      lines.push("", `[${name}]`);
      const tables: [string, Record<string, unknown>][] = [];
      for (const [key, value] of Object.entries(values)) {
        if (value !== null && typeof value === "object" && !Array.isArray(value)) {
          tables.push([`${name}.${key}`, value as Record<string, unknown>]);
          continue;
        }
        // a value set in a file's sub-table is recorded under the table's name
        const source = loaded.sources[`${name}.${key}`] ?? loaded.sources[name] ?? "default";
        lines.push(`${toToml({ [key]: value }).trim()}  # ${source}`);
      }
      for (const [sub, subValues] of tables) table(sub, subValues);
    };
    for (const [section, values] of Object.entries(shown)) table(section, values);
    println(lines.join("\n"));
    return 0;
  },
};
