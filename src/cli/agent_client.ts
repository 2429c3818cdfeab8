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
 * Finds the running agent's API from the same config and data dir as `loam run`: the address
 * the agent wrote to `<data>/api/address` when it started (right whatever the flags or port 0
 * said), else the configured api.listen; the token from `token` or the data dir's admin.token.
 */
export async function findAgent(loaded: LoadedConfig, token?: string): Promise<AgentEndpoint> {
  const paths = dataPathsFor(loaded.config.data.dir);
  await checkDataDir(paths);
  const written = await Deno.readTextFile(paths.apiAddress).catch(() => "");
  let listen = parseListenAddress(written.trim()) ?? parseListenAddress(loaded.config.api.listen)!;
  if (listen.port === 0) {
    throw new UserError(
      `api.listen uses port 0 and ${paths.apiAddress} names no address: is the agent running?`,
      EXIT_AGENT_UNAVAILABLE,
    );
  }
  listen = dialableAddress(listen);
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
  return { baseUrl: `http://${formatListenAddress(listen)}`, token: secret };
}

/** Sends one request to the agent; unreachable becomes a {@link UserError} (exit 1). */
export async function callAgent(
  endpoint: AgentEndpoint,
  path: string,
  init: RequestInit = {},
): Promise<Response> {
  try {
    return await fetch(`${endpoint.baseUrl}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${endpoint.token}`, ...init.headers },
      signal: init.signal ?? AbortSignal.timeout(10_000),
    });
  } catch (err) {
    throw new UserError(
      `cannot reach the agent at ${endpoint.baseUrl} (${
        (err as Error).message
      }); is 'loam run' running?`,
      EXIT_AGENT_UNAVAILABLE,
    );
  }
}

/**
 * A JSON answer of the agent (`GET` unless `init` says otherwise); an error answer becomes a
 * {@link UserError} naming the status and the agent's message (exit 1).
 */
export async function getJson(
  endpoint: AgentEndpoint,
  path: string,
  init: RequestInit = {},
): Promise<unknown> {
  const response = await callAgent(endpoint, path, init);
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
