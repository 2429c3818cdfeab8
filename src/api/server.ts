import type { ListenAddress } from "../config/listen_address.ts";
import { formatListenAddress } from "../config/listen_address.ts";
import { UserError } from "../system/errors.ts";

/** A running API server. */
export interface ApiServer {
  /** The address actually bound (the real port when 0 was asked for). */
  address: ListenAddress;
  /** Stops accepting connections and waits for in-flight requests. */
  shutdown(): Promise<void>;
}

/**
 * Starts Deno.serve on `listen`; a taken or forbidden address is a {@link UserError} naming the
 * `setting` it came from.
 */
export function startApiServer(
  listen: ListenAddress,
  handler: (req: Request) => Promise<Response>,
  setting = "api.listen",
): ApiServer {
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: listen.hostname,
      port: listen.port,
      onListen: () => {},
    }, handler);
  } catch (err) {
    const where = `${setting} = "${formatListenAddress(listen)}"`;
    if (err instanceof Deno.errors.AddrInUse) {
      throw new UserError(`${where}: address already in use (another loam or program has it)`);
    }
    if (err instanceof Deno.errors.AddrNotAvailable) {
      throw new UserError(`${where}: no such local address on this machine`);
    }
    throw new UserError(`${where}: cannot listen: ${(err as Error).message}`);
  }
  return {
    address: { hostname: server.addr.hostname, port: server.addr.port },
    shutdown: () => server.shutdown(),
  };
}
