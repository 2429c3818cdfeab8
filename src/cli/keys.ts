import type { Command } from "./command.ts";
import { parseAction, println } from "./command.ts";
import { CONFIG_OPTIONS, CONFIG_OPTIONS_HELP, loadConfigFromFlags } from "./config_flags.ts";
import { createIdentity, type Identity, readIdentity } from "../mesh/identity.ts";
import { createFleetKey } from "../mesh/fleet_key.ts";
import { checkDataDir, dataPathsFor } from "../system/paths.ts";
import { UserError } from "../system/errors.ts";

const HELP = `Usage:
  loam keys generate --out <file>    new Ed25519 identity (mode 0600); never overwrites
  loam keys show [<file>] [--json]   peer id and public key (default: this node's identity)
  loam keys fleet --out <file>       new fleet key (swarm.key format, mode 0600); never overwrites.
                                     Give every member the same file: mesh.fleet_key_file

${CONFIG_OPTIONS_HELP}`;

function printIdentity(identity: Identity, json: boolean | undefined): void {
  const shown = { peer_id: identity.peerId, public_key: identity.publicKey };
  println(
    json
      ? JSON.stringify(shown, null, 2)
      : `peer_id     ${shown.peer_id}\npublic_key  ${shown.public_key}`,
  );
}

/** `loam keys`: Ed25519 identities for agents and the command post, and fleet keys. */
export const keysCommand: Command = {
  name: "keys",
  help: HELP,
  async run(args) {
    const parsed = parseAction("keys", HELP, args, { generate: 0, show: 1, fleet: 0 }, {
      ...CONFIG_OPTIONS,
      out: { type: "string" },
      json: { type: "boolean" },
    });
    if (parsed.exit !== undefined) return parsed.exit;
    const { action } = parsed;
    switch (action) {
      case "generate": {
        if (!parsed.values.out) throw new UserError("keys generate: --out <file> is required");
        printIdentity(await createIdentity(parsed.values.out), parsed.values.json);
        return 0;
      }
      case "fleet": {
        if (!parsed.values.out) throw new UserError("keys fleet: --out <file> is required");
        const key = await createFleetKey(parsed.values.out);
        println(
          parsed.values.json
            ? JSON.stringify({ path: parsed.values.out, fleet_key: key.fingerprint }, null, 2)
            : `fleet key ${key.fingerprint} written to ${parsed.values.out} (mode 0600)`,
        );
        return 0;
      }
      case "show": {
        let file = parsed.positionals[0];
        if (file === undefined) {
          const loaded = await loadConfigFromFlags(parsed.values);
          const paths = dataPathsFor(loaded.config.data.dir);
          await checkDataDir(paths);
          file = paths.identityKey;
        }
        printIdentity(await readIdentity(file), parsed.values.json);
        return 0;
      }
    }
  },
};
