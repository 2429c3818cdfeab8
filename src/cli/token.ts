import type { Command } from "./command.ts";
import { parseAction, println } from "./command.ts";
import { CONFIG_OPTIONS, CONFIG_OPTIONS_HELP, loadConfigFromFlags } from "./config_flags.ts";
import { parseScopes, TokenStore } from "../api/tokens.ts";
import { checkDataDir, dataPathsFor, openDataDir } from "../system/paths.ts";
import { UserError } from "../system/errors.ts";

const HELP = `Usage:
  loam token create --scopes <a,b> [--name <name>]   make a token; prints the secret once
  loam token list [--json]                           names, scopes, creation times
  loam token revoke <name>                           delete a token

Scopes: status:read, deploy:write, infer:run, metrics:read, * (admin: everything + tokens).
Tokens live hashed in <data>/api/tokens.json; a running agent picks up changes at once.

${CONFIG_OPTIONS_HELP}`;

/** `loam token`: create, list and revoke API tokens of this node's data dir. */
export const tokenCommand: Command = {
  name: "token",
  help: HELP,
  async run(args) {
    const parsed = parseAction("token", HELP, args, { create: 0, list: 0, revoke: 1 }, {
      ...CONFIG_OPTIONS,
      scopes: { type: "string" },
      name: { type: "string" },
      json: { type: "boolean" },
    });
    if (parsed.exit !== undefined) return parsed.exit;
    const { action } = parsed;
    const loaded = await loadConfigFromFlags(parsed.values);
    const paths = dataPathsFor(loaded.config.data.dir);
    const store = new TokenStore(paths.tokens);
    switch (action) {
      case "create": {
        if (parsed.values.scopes === undefined) {
          throw new UserError("token create: --scopes is required, e.g. --scopes status:read");
        }
        const scopes = parseScopes(parsed.values.scopes);
        const name = parsed.values.name ?? `token-${crypto.randomUUID().slice(0, 8)}`;
        await openDataDir(paths);
        const secret = await store.create(name, scopes);
        console.error(`created token "${name}" (${scopes.join(",")}); it is shown only once:`);
        println(secret);
        return 0;
      }
      case "list": {
        await checkDataDir(paths);
        const tokens = await store.list();
        if (parsed.values.json) {
          println(JSON.stringify(tokens, null, 2));
        } else if (tokens.length === 0) {
          println("no tokens");
        } else {
          const width = Math.max(4, ...tokens.map((t) => t.name.length));
          println(`${"NAME".padEnd(width)}  CREATED                   SCOPES`);
          for (const t of tokens) {
            println(`${t.name.padEnd(width)}  ${t.created_at.padEnd(24)}  ${t.scopes.join(",")}`);
          }
        }
        return 0;
      }
      case "revoke": {
        const name = parsed.positionals[0];
        if (name === undefined) throw new UserError("token revoke: name the token to revoke");
        await checkDataDir(paths);
        await store.revoke(name);
        console.error(`revoked token "${name}"`);
        return 0;
      }
    }
  },
};
