import type { ParseArgsOptionsConfig } from "node:util";
import { type FlagSetting, loadConfig, type LoadedConfig } from "../config/load.ts";
import { UserError } from "../system/errors.ts";

/** Flags every config-reading command accepts. */
export const CONFIG_OPTIONS = {
  config: { type: "string" },
  "data-dir": { type: "string" },
  "api-listen": { type: "string" },
  "node-id": { type: "string" },
  "formation-id": { type: "string" },
  "mesh-listen": { type: "string" },
  bootstrap: { type: "string", multiple: true },
  "fleet-key": { type: "string" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  set: { type: "string", multiple: true },
} as const satisfies ParseArgsOptionsConfig;

/** Help text for {@link CONFIG_OPTIONS}. */
export const CONFIG_OPTIONS_HELP = `Configuration (flags > LOAM_* env > TOML file > defaults):
  --config <file>        TOML config file (default: $LOAM_CONFIG, else /etc/loam/loam.toml if present)
  --data-dir <dir>       data directory (data.dir, LOAM_DATA_DIR)
  --api-listen <h:p>     local API address (api.listen, LOAM_API_LISTEN)
  --node-id <id>         node id (node.id, LOAM_NODE_ID)
  --formation-id <id>    formation (node.formation_id, LOAM_NODE_FORMATION_ID)
  --mesh-listen <maddr>  mesh listen multiaddr (mesh.listen, LOAM_MESH_LISTEN)
  --bootstrap <maddr>    peer to join through, repeatable (mesh.bootstrap, LOAM_MESH_BOOTSTRAP)
  --fleet-key <file>     the fleet's swarm.key (mesh.fleet_key_file, LOAM_MESH_FLEET_KEY_FILE)
  --log-level <lvl>      debug | info | warn | error (log.level)
  --log-format <fmt>     auto | human | json (log.format)
  --set <key=value>      any config key, repeatable, e.g. --set api.public_metrics=true`;

const FLAG_KEYS = {
  "data-dir": "data.dir",
  "api-listen": "api.listen",
  "node-id": "node.id",
  "formation-id": "node.formation_id",
  "mesh-listen": "mesh.listen",
  "fleet-key": "mesh.fleet_key_file",
  "log-level": "log.level",
  "log-format": "log.format",
} as const;

/** Flag values as parsed from {@link CONFIG_OPTIONS}. */
export type ConfigFlagValues =
  & { config?: string; set?: string[]; bootstrap?: string[] }
  & Partial<Record<keyof typeof FLAG_KEYS, string>>;

/** Loads the config from the environment, the file and these flags. */
export function loadConfigFromFlags(values: ConfigFlagValues): Promise<LoadedConfig> {
  const flags: FlagSetting[] = [];
  for (const [flag, key] of Object.entries(FLAG_KEYS)) {
    const value = values[flag as keyof typeof FLAG_KEYS];
    if (value !== undefined) flags.push({ key, value, flag: `--${flag}` });
  }
  if (values.bootstrap?.length) {
    flags.push({ key: "mesh.bootstrap", value: values.bootstrap.join(","), flag: "--bootstrap" });
  }
  for (const assignment of values.set ?? []) {
    const eq = assignment.indexOf("=");
    if (eq <= 0) throw new UserError(`--set expects key=value, got "${assignment}"`);
    flags.push({ key: assignment.slice(0, eq), value: assignment.slice(eq + 1), flag: "--set" });
  }
  return loadConfig({ configPath: values.config, env: Deno.env.toObject(), flags });
}
