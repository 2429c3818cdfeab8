import type { Command } from "./command.ts";
import { parseFlags, println } from "./command.ts";
import { AGENT_OPTIONS, AGENT_OPTIONS_HELP, agentFrom } from "./agent_command.ts";
import { getJson } from "./agent_client.ts";
import { parseScopes } from "../api/tokens.ts";
import type { IssuedCode } from "../api/console_codes.ts";

const HELP = `Usage: loam console [--scopes <a,b>] [--json] [options]

Prints a one-time login URL for the local web console, e.g.
  http://127.0.0.1:7411/?code=…
Open it within a minute: the page trades the code for a session token that lasts 12 hours and
keeps it for this browser tab only. Nobody pastes the admin token. From a laptop, tunnel the
API port first: ssh -L 7411:127.0.0.1:7411 <box>, then open the URL there.

  --scopes <a,b>         what the session may do (default *: everything; status:read only
                         looks, with no buttons)
${AGENT_OPTIONS_HELP}`;

/** `loam console`: a one-time login URL for the web console, made with the admin token. */
export const consoleCommand: Command = {
  name: "console",
  help: HELP,
  async run(args) {
    const parsed = parseFlags("console", args, { ...AGENT_OPTIONS, scopes: { type: "string" } });
    if (parsed.help) {
      println(this.help);
      return 0;
    }
    const scopes = parsed.values.scopes === undefined ? ["*"] : parseScopes(parsed.values.scopes);
    const endpoint = await agentFrom(parsed.values);
    const issued = await getJson(endpoint, "/v1/console/codes", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ scopes }),
    }) as IssuedCode;
    const url = `${endpoint.baseUrl}/?code=${encodeURIComponent(issued.code)}`;
    if (parsed.values.json) println(JSON.stringify({ url, ...issued, scopes }, null, 2));
    else {
      console.error(`one-time login, valid until ${issued.expires_at} (${scopes.join(",")}):`);
      println(url);
    }
    return 0;
  },
};
