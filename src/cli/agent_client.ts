import type { LoadedConfig } from "../config/load.ts";
import {
  dialableAddress,
  formatListenAddress,
  parseListenAddress,
} from "../config/listen_address.ts";
import { checkDataDir, dataPathsFor } from "../system/paths.ts";
import { UserError } from "../system/errors.ts";

/** Exit code when the agent cannot be reached or answers with an error. */
const EXIT_AGENT_UNAVAILABLE = 1;

/** How a CLI command reaches the local agent: base URL and bearer token. */
export interface AgentEndpoint {
  baseUrl: string;
  token: string;
}

/**
 * Finds the running agent's API from the same config and data dir as `loam run`: the configured
 * api.listen, or the address the agent wrote when it listens on port 0; the token from `token`
 * or the data dir's admin.token.
 */
export async function findAgent(loaded: LoadedConfig, token?: string): Promise<AgentEndpoint> {
  const paths = dataPathsFor(loaded.config.data.dir);
  let listen = parseListenAddress(loaded.config.api.listen)!;
  if (listen.port === 0 || token === undefined) await checkDataDir(paths);
  if (listen.port === 0) {
    const written = await Deno.readTextFile(paths.apiAddress).catch(() => "");
    const actual = parseListenAddress(written.trim());
    if (!actual) {
      throw new UserError(
        `api.listen uses port 0 and ${paths.apiAddress} names no address: is the agent running?`,
        EXIT_AGENT_UNAVAILABLE,
      );
    }
    listen = actual;
  }
  let secret = token;
  if (secret === undefined) {
    try {
      secret = (await Deno.readTextFile(paths.adminToken)).trim();
    } catch (err) {
      throw new UserError(
        `no token: pass --token, or make ${paths.adminToken} readable (${(err as Error).message})`,
      );
    }
  }
  return { baseUrl: `http://${formatListenAddress(dialableAddress(listen))}`, token: secret };
}

/** GETs a JSON document from the agent; unreachable or error answers become a {@link UserError}. */
export async function getJson(endpoint: AgentEndpoint, path: string): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(`${endpoint.baseUrl}${path}`, {
      headers: { authorization: `Bearer ${endpoint.token}` },
      signal: AbortSignal.timeout(10_000),
    });
  } catch (err) {
    throw new UserError(
      `cannot reach the agent at ${endpoint.baseUrl} (${
        (err as Error).message
      }); is 'loam run' running?`,
      EXIT_AGENT_UNAVAILABLE,
    );
  }
  const body = await response.json().catch(() => undefined) as
    | { error?: { code: string; message: string } }
    | undefined;
  if (!response.ok) {
    const detail = body?.error ? `${body.error.code}: ${body.error.message}` : response.statusText;
    throw new UserError(
      `agent answered ${response.status} for ${path} (${detail})`,
      EXIT_AGENT_UNAVAILABLE,
    );
  }
  return body;
}
