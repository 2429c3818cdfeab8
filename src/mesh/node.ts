import { createLibp2p } from "libp2p";
import { gossipsub } from "@libp2p/gossipsub";
import { tcp } from "@libp2p/tcp";
import { noise } from "@chainsafe/libp2p-noise";
import { yamux } from "@libp2p/yamux";
import { identify } from "@libp2p/identify";
import { ping } from "@libp2p/ping";
import { bootstrap } from "@libp2p/bootstrap";
import { mdns } from "@libp2p/mdns";
import { kadDHT, passthroughMapper } from "@libp2p/kad-dht";
import type { ConnectionGater, ConnectionProtector, PrivateKey } from "@libp2p/interface";
import { originSeqnoKey } from "./message_id.ts";
import { installYamuxWindowGrants } from "./yamux_window_grants.ts";
import { UserError } from "../system/errors.ts";

/**
 * yamux's default stream window (256 KiB, growing to 16 MiB) keeps a fast transfer waiting on
 * window updates: both ends measured mostly idle. Granting 16 MiB at once (see
 * yamux_window_grants.ts) took a 512 MiB transfer between two processes from ~230 to ~320 MB/s.
 * The window is a credit, not an allocation.
 */
const YAMUX_WINDOW = 16 * 1024 * 1024;
/**
 * A paused reader stops granting window, but the sender may still use the credit it holds: the
 * stream must be able to buffer a whole window (yamux's default limit, 4 MiB, would abort it).
 */
const STREAM_READ_BUFFER = 2 * YAMUX_WINDOW;

/**
 * The TCP transport waits for the socket's 'drain' whenever `write()` reports its buffer past
 * the high-water mark (Node's default: 16 KiB), i.e. after nearly every 64 KiB noise frame.
 * A 4 MiB mark lets frames queue instead of stalling on the event loop each time (net.connect
 * and net.createServer take `highWaterMark`; libp2p's option type does not list it).
 */
const SOCKET_OPTIONS = { highWaterMark: 4 * 1024 * 1024 } as Record<string, unknown>;

/** What the libp2p node is built from. */
export interface MeshNodeOptions {
  privateKey: PrivateKey;
  listen: string;
  bootstrap: string[];
  network: string;
  mdns: boolean;
  /** Largest gossip message accepted by the transport (the envelope check is stricter). */
  maxMessageBytes: number;
  /** Watches connections for identity problems (see peer_id_clash.ts); denies nothing itself. */
  connectionGater?: ConnectionGater;
  /** The fleet key's pnet protector (see fleet_guard.ts); none = an open mesh. */
  connectionProtector?: () => ConnectionProtector;
}

/** Builds the libp2p node type once so callers see the services' types. */
function buildNode(options: MeshNodeOptions) {
  installYamuxWindowGrants();
  const discovery = [
    ...(options.bootstrap.length > 0 ? [bootstrap({ list: options.bootstrap })] : []),
    ...(options.mdns ? [mdns({ serviceTag: `loam-${options.network}.local` })] : []),
  ];
  return createLibp2p({
    // started by createMeshNode, which turns a failure to listen into one line
    start: false,
    privateKey: options.privateKey,
    addresses: { listen: [options.listen] },
    transports: [tcp({ dialOpts: SOCKET_OPTIONS, listenOpts: SOCKET_OPTIONS })],
    connectionEncrypters: [noise()],
    streamMuxers: [
      yamux({
        streamOptions: {
          maxStreamWindowSize: YAMUX_WINDOW,
          maxReadBufferLength: STREAM_READ_BUFFER,
        },
      }),
    ],
    peerDiscovery: discovery,
    connectionGater: options.connectionGater,
    connectionProtector: options.connectionProtector,
    connectionManager: {
      // fleets behind one NAT (or many agents on one host) open many connections from one
      // address at once; libp2p's default of 5 per second per host turned most of them away
      inboundConnectionThreshold: 100,
      maxIncomingPendingConnections: 64,
    },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        fastMsgIdFn: originSeqnoKey,
        // Edge fleets share addresses (a site behind one NAT, many agents on one host): the
        // default penalty for more than 10 peers on one IP drove every peer's score to -405
        // with 20 agents, below the graylist, and gossip stopped. Peers are authenticated by
        // key and messages by signature; IP colocation says nothing about them here.
        scoreParams: { IPColocationFactorWeight: 0 },
        // a little over the envelope limit so oversized messages reach our validator and count
        maxInboundDataLength: options.maxMessageBytes + 64 * 1024,
      }),
      // A private fleet DHT: its own protocol per network, and LAN addresses are kept.
      dht: kadDHT({
        protocol: `/loam/${options.network}/kad/1.0.0`,
        clientMode: false,
        peerInfoMapper: passthroughMapper,
      }),
    },
  });
}

/** The libp2p node with loam's services. */
export type MeshNode = Awaited<ReturnType<typeof buildNode>>;

/** Why listening failed, for the failures a user can act on (Node's OS error codes, libp2p's). */
const LISTEN_CAUSES: Record<string, string> = {
  EADDRINUSE: "address already in use (another loam or program has it)",
  EADDRNOTAVAIL: "no such local address on this machine",
  EACCES: "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
  UnsupportedListenAddressError: "not a TCP address (expected /ip4/<address>/tcp/<port>)",
};

/**
 * The cause of a failed start in one line. libp2p reports a listen failure as text only (each
 * address with its error's stack), so the cause is found in that text.
 */
function startFailure(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const known = message.match(new RegExp(`\\b(${Object.keys(LISTEN_CAUSES).join("|")})\\b`));
  if (known) return LISTEN_CAUSES[known[1]!]!;
  // "<intro>:\n\n  <addr>: <error>\n      at ..." → "<error>"
  const lines = message.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const detail = lines.length > 1 && !lines[1]!.startsWith("at ") ? lines[1]! : lines[0] ?? "";
  return `cannot listen: ${detail.replace(/^\/\S*: /, "")}`;
}

/**
 * Creates and starts the libp2p node: TCP + noise + yamux, identify, ping, gossipsub,
 * kad-dht, bootstrap list and optional mDNS. Discovered peers are dialled (libp2p does not
 * dial discoveries by itself). A node that cannot start is stopped again and its cause thrown as
 * a one-line {@link UserError} (the caller names the setting).
 */
export async function createMeshNode(options: MeshNodeOptions): Promise<MeshNode> {
  const node: MeshNode = await buildNode(options);
  node.addEventListener("peer:discovery", (evt) => {
    const peer = evt.detail;
    if (peer.id.equals(node.peerId)) return;
    node.dial(peer.id, { signal: AbortSignal.timeout(10_000) }).catch(() => {
      // unreachable for now: the maintenance loop and later discoveries retry
    });
  });
  try {
    await node.start();
  } catch (err) {
    try {
      await node.stop();
    } catch {
      // half-started services: the start failure is what the user needs to see
    }
    throw new UserError(startFailure(err));
  }
  return node;
}
