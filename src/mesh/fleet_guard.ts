/**
 * The fleet key at the connection: libp2p's pnet protector (`@libp2p/pnet`), watched so that a
 * peer with another key or none is named in the log. pnet itself cannot tell: with different keys
 * both ends just decrypt noise, and the connection dies later in protocol negotiation with a
 * generic error. A member's first bytes after pnet are always multistream-select's header, so
 * anything else means the keys differ.
 * @module
 */
import type { ConnectionProtector, MessageStream, MultiaddrConnection } from "@libp2p/interface";
import type { Multiaddr } from "@multiformats/multiaddr";
import { preSharedKey } from "@libp2p/pnet";
import { Counter, type Registry } from "prom-client";
import type { Logger } from "../system/logger.ts";
import { RefusalLog } from "./host_rate_limit.ts";

/** What every libp2p connection sends first: multistream-select's varint-prefixed header. */
const MULTISTREAM_HEADER = new TextEncoder().encode("\x13/multistream/1.0.0\n");

/** Called once per connection whose keys differ: the remote address and what was seen. */
export type OnMismatch = (remoteAddr: Multiaddr, why: string) => void;

/** The parts of pnet's stream this watches: decrypted bytes arrive through `onData`. */
interface DecryptingStream {
  onData(data: Uint8Array | { subarray(): Uint8Array }): void;
  readBuffer: { byteLength: number; subarray(): Uint8Array };
  abort(err: Error): void;
}

function isDecrypting(stream: unknown): stream is DecryptingStream {
  const s = stream as Partial<DecryptingStream>;
  return typeof s.onData === "function" && typeof s.abort === "function" &&
    s.readBuffer !== undefined;
}

/** Checks the first decrypted bytes; aborts the connection and reports when they are not libp2p. */
function watchFirstBytes(stream: DecryptingStream, mismatch: (why: string) => void): void {
  let seen = new Uint8Array(0);
  const check = (): boolean => {
    const n = Math.min(seen.length, MULTISTREAM_HEADER.length);
    for (let i = 0; i < n; i++) {
      if (seen[i] !== MULTISTREAM_HEADER[i]) {
        mismatch("its first bytes did not decrypt to libp2p's protocol header");
        stream.abort(new Error("fleet key mismatch"));
        return true;
      }
    }
    return n === MULTISTREAM_HEADER.length;
  };
  const add = (bytes: Uint8Array) => {
    const next = new Uint8Array(seen.length + bytes.length);
    next.set(seen);
    next.set(bytes, seen.length);
    seen = next.subarray(0, MULTISTREAM_HEADER.length);
  };
  if (stream.readBuffer.byteLength > 0) {
    add(stream.readBuffer.subarray());
    if (check()) return;
  }
  const onData = stream.onData.bind(stream);
  stream.onData = (data) => {
    onData(data);
    add(data instanceof Uint8Array ? data : data.subarray());
    if (check()) stream.onData = onData;
  };
}

/**
 * libp2p's `connectionProtector` for a fleet key file's content: pnet, plus a call to
 * `onMismatch` for each connection whose peer holds another key or none.
 */
export function fleetKeyProtector(
  psk: Uint8Array,
  onMismatch: OnMismatch,
): () => ConnectionProtector {
  const pnet = preSharedKey({ psk })();
  return () => ({
    async protect(connection: MessageStream, options) {
      // libp2p protects the raw connection, which knows its remote address
      const remote = (connection as MultiaddrConnection).remoteAddr;
      let protectedStream: MessageStream;
      try {
        protectedStream = await pnet.protect(connection, options);
      } catch (err) {
        onMismatch(remote, `no fleet key exchange (${(err as Error).message})`);
        throw err;
      }
      if (isDecrypting(protectedStream)) {
        watchFirstBytes(protectedStream, (why) => onMismatch(remote, why));
      }
      return protectedStream;
    },
  });
}

/**
 * Logs "fleet key mismatch" with the remote address, at most once a minute per remote host (a
 * scanner cannot fill the journal), and counts every one in
 * `loam_mesh_fleet_key_mismatches_total`.
 */
export class MismatchReporter {
  readonly #counter: Counter;
  readonly #lines: RefusalLog;

  constructor(logger: Logger, registry: Registry) {
    this.#lines = new RefusalLog(logger);
    this.#counter = new Counter({
      name: "loam_mesh_fleet_key_mismatches_total",
      help: "Mesh connections refused because the peer holds another fleet key or none.",
      registers: [registry],
    });
  }

  /** The {@link OnMismatch} to give {@link fleetKeyProtector}. */
  readonly report: OnMismatch = (remoteAddr, why) => {
    this.#counter.inc();
    this.#lines.warn(remoteAddr, "fleet key mismatch: a peer without this fleet key was refused", {
      why,
    });
  };
}
