/**
 * Once a minute per remote host: what the mesh's refusal warnings (fleet key mismatches, unlisted
 * peers) go through, so that a scanner or a misconfigured member cannot fill the journal; each
 * line says how many were held back since the last one.
 * @module
 */
import type { Multiaddr } from "@multiformats/multiaddr";
import type { Logger } from "../system/logger.ts";

/** One line per host per this long. */
const WINDOW_MS = 60_000;
/** Hosts remembered; a scan of more starts every window again. */
const MAX_HOSTS = 1024;

/** The host part of an address (`/ip4/10.0.0.2/tcp/53122` → `/ip4/10.0.0.2`). */
export function hostOf(address: Multiaddr): string {
  const first = address.getComponents()[0];
  return first?.value ? `/${first.name}/${first.value}` : address.toString();
}

/** Decides which refusals are logged. */
export class HostRateLimit {
  readonly #hosts = new Map<string, { at: number; held: number }>();

  /**
   * Whether to log a refusal from `host` now, and if so how many were held back since the last
   * line for that host (`undefined` when none).
   */
  admit(host: string, now = Date.now()): { log: false } | { log: true; held?: number } {
    const last = this.#hosts.get(host);
    if (last && now - last.at < WINDOW_MS) {
      last.held++;
      return { log: false };
    }
    if (this.#hosts.size >= MAX_HOSTS) this.#hosts.clear();
    this.#hosts.set(host, { at: now, held: 0 });
    return { log: true, held: last?.held || undefined };
  }
}

/** The mesh's refusal warnings, each host's at most once a minute through a {@link HostRateLimit}. */
export class RefusalLog {
  readonly #logger: Logger;
  readonly #limit = new HostRateLimit();

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** Logs `message` for a refusal of `remote`, unless its host already had a line this minute. */
  warn(remote: Multiaddr, message: string, fields: Record<string, unknown> = {}): void {
    const gate = this.#limit.admit(hostOf(remote));
    if (!gate.log) return;
    this.#logger.warn(message, {
      remote: remote.toString(),
      ...fields,
      ...(gate.held ? { more_since_last_report: gate.held } : {}),
    });
  }
}
