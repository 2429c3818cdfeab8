import type { Command } from "./command.ts";
import { parseFlags, println } from "./command.ts";
import { CONFIG_OPTIONS, CONFIG_OPTIONS_HELP, loadConfigFromFlags } from "./config_flags.ts";
import { createIdentity, type Identity, readIdentity } from "../mesh/identity.ts";
import { dataPathsFor } from "../system/paths.ts";
import { UserError } from "../system/errors.ts";

const HELP = `Usage:
  loam keys generate --out <file>    new Ed25519 identity (mode 0600); never overwrites
  loam keys show [<file>] [--json]   peer id and public key (default: this node's identity)

${CONFIG_OPTIONS_HELP}`;

function printIdentity(identity: Identity, json: boolean | undefined): void {
  const shown = { peer_id: identity.peerId, public_key: identity.publicKey };
  println(
    json
      ? JSON.stringify(shown, null, 2)
      : `peer_id     ${shown.peer_id}\npublic_key  ${shown.public_key}`,
  );
}

/** `loam keys`: Ed25519 identities for agents and the command post. */
export const keysCommand: Command = {
  name: "keys",
  summary: "generate or show an Ed25519 identity",
  help: HELP,
  async run(args) {
    const [action, ...rest] = args;
    if (action === undefined || action === "--help" || action === "-h") {
      println(HELP);
      return action === undefined ? 2 : 0;
    }
    const parsed = parseFlags(`keys ${action}`, rest, {
      ...CONFIG_OPTIONS,
      out: { type: "string" },
      json: { type: "boolean" },
    }, action === "show" ? 1 : 0);
    if (parsed.help) {
      println(HELP);
      return 0;
    }
    switch (action) {
      case "generate": {
        if (!parsed.values.out) throw new UserError("keys generate: --out <file> is required");
        printIdentity(await createIdentity(parsed.values.out), parsed.values.json);
        return 0;
      }
      case "show": {
        let file = parsed.positionals[0];
        if (file === undefined) {
          const loaded = await loadConfigFromFlags(parsed.values);
          file = dataPathsFor(loaded.config.data.dir).identityKey;
        }
        printIdentity(await readIdentity(file), parsed.values.json);
        return 0;
      }
      default:
        throw new UserError(`keys: unknown action "${action}" (generate or show)`);
    }
  },
};
