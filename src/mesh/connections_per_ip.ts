/**
 * `mesh.limits.connections_per_ip`: open inbound connections one address may hold. A member (or
 * anything that can reach the port) opening connections in a loop is refused past the limit,
 * before any handshake, counted, and logged once a minute per host. Sites behind one NAT open
 * many legitimate connections from one address, so the default is generous.
 * @module
 */
import type { ConnectionGater, MultiaddrConnection } from "@libp2p/interface";
import { Counter, type Registry } from "prom-client";
import type { Logger } from "../system/logger.ts";
import { hostOf, RefusalLog } from "./host_rate_limit.ts";

/** Counts inbound connections per remote host and refuses those past the limit. */
export class ConnectionsPerIp {
  readonly #limit: number;
  readonly #refused: Counter;
  readonly #open = new Map<string, number>();
  readonly #lines: RefusalLog;

  constructor(limit: number, logger: Logger, registry: Registry) {
    this.#limit = limit;
    this.#lines = new RefusalLog(logger);
    this.#refused = new Counter({
      name: "loam_mesh_connections_refused_total",
      help: "Inbound mesh connections refused: their address had mesh.limits.connections_per_ip.",
      registers: [registry],
    });
  }

  /** The gater hook: true (deny) when the connection's host already has the limit open. */
  readonly gater: Pick<ConnectionGater, "denyInboundConnection"> = {
    denyInboundConnection: (maConn: MultiaddrConnection) => {
      const host = hostOf(maConn.remoteAddr);
      const open = this.#open.get(host) ?? 0;
      if (open >= this.#limit) {
        this.#refused.inc();
        this.#lines.warn(
          maConn.remoteAddr,
          "refused a mesh connection: its address has too many open",
          { open, limit: this.#limit },
        );
        return true;
      }
      this.#open.set(host, open + 1);
      maConn.addEventListener("close", () => {
        const left = (this.#open.get(host) ?? 1) - 1;
        if (left > 0) this.#open.set(host, left);
        else this.#open.delete(host);
      }, { once: true });
      return false;
    },
  };
}
