import type { Hardware } from "../system/hardware.ts";
import type { IdentityProblem } from "../mesh/identity_problems.ts";

/** The `/v1/status` document. */
export interface StatusReport {
  node_id: string;
  peer_id: string;
  version: string;
  uptime_s: number;
  started_at: string;
  arch: string;
  os: string;
  formation_id: string | null;
  capabilities: string[];
  data_dir: string;
  /** The address the local API listens on. */
  api: string;
  ready: boolean;
  /** Mesh network name, connected peers, and the multiaddrs others can dial. */
  network: string;
  peer_count: number;
  listen_addrs: string[];
  /**
   * Identity problems noticed since start (a copied identity key, a node id used twice), each
   * with a one-line remedy: such a node is cut off from part of the mesh or counted as another.
   */
  identity_problems: IdentityProblem[];
  /**
   * Who may join: `open` when no fleet key is set (anyone who can reach the mesh port can
   * connect), else the key's fingerprint (never the key).
   */
  mesh: { open: boolean; fleet_key: string | null };
  hardware: Hardware;
}
