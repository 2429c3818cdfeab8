import { CID } from "multiformats/cid";
import * as Digest from "multiformats/hashes/digest";
import { fromString as bytesFromString } from "uint8arrays/from-string";
import type { MeshNode } from "./node.ts";
import type { PeerTable } from "./peers.ts";
import { openPeerBlob } from "./blob_protocol.ts";
import type { PeerBlobStream, PeerSource } from "../blobs/peer_attempt.ts";

/** Longest a DHT provider lookup may take before the fetch goes on without it. */
const DHT_LOOKUP_MS = 3000;
const MAX_DHT_PROVIDERS = 8;

/** The content id of a blob for DHT provider records: CIDv1, raw codec, sha2-256 multihash. */
export function blobCid(hex: string): CID {
  return CID.createV1(0x55, Digest.create(0x12, bytesFromString(hex, "base16")));
}

/** Finds holders in adverts and the DHT, and streams blobs from them over the blob protocol. */
export class MeshBlobSource implements PeerSource {
  readonly #node: MeshNode;
  readonly #peers: PeerTable;

  constructor(node: MeshNode, peers: PeerTable) {
    this.#node = node;
    this.#peers = peers;
  }

  /**
   * Holders named by adverts; when none did, `search` is set and some peer is connected, DHT
   * providers, looked up for at most 3 s.
   */
  async holders(
    hex: string,
    exclude: Set<string>,
    search: boolean,
    signal: AbortSignal,
  ): Promise<string[]> {
    const self = this.#node.peerId.toString();
    const usable = (peer: string) => peer !== self && !exclude.has(peer);
    const found = new Set(this.#peers.advertisedHolders(hex).filter(usable));
    if (found.size > 0 || !search || this.#node.getPeers().length === 0) return [...found];
    const lookup = AbortSignal.any([signal, AbortSignal.timeout(DHT_LOOKUP_MS)]);
    try {
      for await (
        const provider of this.#node.contentRouting.findProviders(blobCid(hex), { signal: lookup })
      ) {
        if (usable(provider.id.toString())) found.add(provider.id.toString());
        if (found.size >= MAX_DHT_PROVIDERS) break;
      }
    } catch {
      // timeout or no route: the advertised holders are what we have
    }
    return [...found];
  }

  /** Opens the blob on a peer from `offset`. */
  open(peer: string, hex: string, offset: number, signal: AbortSignal): Promise<PeerBlobStream> {
    return openPeerBlob(this.#node, peer, hex, offset, signal);
  }
}
