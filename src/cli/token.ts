import type { Command } from "./command.ts";
import { parseAction, println } from "./command.ts";
import { CONFIG_OPTIONS, CONFIG_OPTIONS_HELP, loadConfigFromFlags } from "./config_flags.ts";
import { parseScopes, TokenStore } from "../api/tokens.ts";
import { checkDataDir, dataPathsFor, openDataDir } from "../system/paths.ts";
import { UserError } from "../system/errors.ts";

const HELP = `Usage:
  loam token create --scopes <a,b> [--name <name>] [--expires-in <30m|12h|7d>]
                                                     make a token; prints the secret once
  loam token list [--json]                           names, scopes, creation and expiry times
  loam token revoke <name>                           delete a token

Scopes: status:read, deploy:write, infer:run, metrics:read, registry:read, registry:write,
* (admin: everything + tokens).
Tokens live hashed in <data>/api/tokens.json; a running agent picks up changes at once.

${CONFIG_OPTIONS_HELP}`;

/** `30m`, `12h`, `7d` (or seconds, `90s`) in ms; anything else names what is wrong. */
function parseLifetime(text: string): number {
  const m = /^(\d{1,6})(s|m|h|d)$/.exec(text);
  if (!m || Number(m[1]) === 0) {
    throw new UserError(`--expires-in "${text}": expected a duration such as 30m, 12h or 7d`);
  }
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "s"];
}

/** `loam token`: create, list and revoke API tokens of this node's data dir. */
export const tokenCommand: Command = {
  name: "token",
  help: HELP,
  async run(args) {
    const parsed = parseAction("token", HELP, args, { create: 0, list: 0, revoke: 1 }, {
      ...CONFIG_OPTIONS,
      scopes: { type: "string" },
      name: { type: "string" },
      "expires-in": { type: "string" },
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
        const lifetime = parsed.values["expires-in"];
        const expiresAt = lifetime === undefined
          ? undefined
          : new Date(Date.now() + parseLifetime(lifetime));
        await openDataDir(paths);
        const secret = await store.create(name, scopes, undefined, expiresAt);
        const until = expiresAt ? `, until ${expiresAt.toISOString()}` : "";
        console.error(
          `created token "${name}" (${scopes.join(",")}${until}); it is shown only once:`,
        );
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
          println(
            `${"NAME".padEnd(width)}  CREATED                   EXPIRES                   SCOPES`,
          );
          for (const t of tokens) {
            println(
              `${t.name.padEnd(width)}  ${t.created_at.padEnd(24)}  ${
                (t.expires_at ?? "never").padEnd(24)
              }  ${t.scopes.join(",")}`,
            );
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
