import { multiaddr } from "@multiformats/multiaddr";
import type { MeshNode } from "./node.ts";

/** How long one redial of a bootstrap address may take. */
const DIAL_TIMEOUT_MS = 10_000;

/**
 * Dials each bootstrap address whose peer is not connected now (libp2p's bootstrap module dials
 * only at start): after a partition, or after the agents it names restarted, for instance
 * into a new version. Failures are passed to `onError` and otherwise ignored.
 */
export async function redialBootstrap(
  node: MeshNode,
  addresses: readonly string[],
  onError: (address: string, err: unknown) => void = () => {},
): Promise<void> {
  const own = node.peerId.toString();
  const connected = new Set(node.getPeers().map((p) => p.toString()));
  for (const address of addresses) {
    const ma = multiaddr(address);
    const peer = ma.getComponents().find((c) => c.name === "p2p")?.value;
    if (peer === own || (peer && connected.has(peer))) continue;
    await node.dial(ma, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) }).catch((err) =>
      onError(address, err)
    );
  }
}
