import { z } from "zod";
import { multiaddr } from "@multiformats/multiaddr";
import { peerIdFromString } from "@libp2p/peer-id";
import { isLoopback, parseListenAddress } from "./listen_address.ts";

const listenAddress = z.string().refine(
  (s) => parseListenAddress(s) !== undefined,
  "expected host:port, e.g. 127.0.0.1:7411 (port 0 picks a free port)",
);

const identifier = z.string().regex(
  /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/,
  "expected 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
);

const capability = z.string().regex(
  /^[a-z0-9][a-z0-9._:-]{0,63}$/,
  "expected a lowercase capability name such as 'camera' or 'site:north'",
);

/** The `[node]` section: who this node is. */
const NodeSectionSchema = z.strictObject({
  /** Node id used in directives' node scopes and status; defaults to the host name. */
  id: identifier.default(() => Deno.hostname()),
  /** Formation (group) this node belongs to, if any. */
  formation_id: identifier.optional(),
  /** Extra capabilities this node advertises beyond those detected. */
  capabilities: z.array(capability).default([]),
});

const multiaddrText = z.string().refine((s) => {
  try {
    multiaddr(s);
    return s.startsWith("/");
  } catch {
    return false;
  }
}, "expected a multiaddr such as /ip4/0.0.0.0/tcp/7412");

const peerMultiaddr = multiaddrText.refine(
  (s) => /\/p2p\/[1-9A-HJ-NP-Za-km-z]+$/.test(s),
  "expected a multiaddr ending in /p2p/<peer id>, e.g. /ip4/10.0.0.1/tcp/7412/p2p/12D3KooW...",
);

const peerId = z.string().refine((s) => {
  try {
    peerIdFromString(s);
    return true;
  } catch {
    return false;
  }
}, "expected a libp2p peer id such as 12D3KooW...");

/** The `[mesh.limits]` table: what one peer may cost this node. */
const MeshLimitsSchema = z.strictObject({
  /**
   * Gossip messages per second one peer may forward to this node (it may send ten seconds' worth
   * at once); past that they are ignored unread and counted. 0 = no limit.
   */
  gossip_per_second: z.number().int().min(0).max(1_000_000).default(200),
  /**
   * Open inbound connections one address may hold; more are refused before any handshake. Sites
   * behind one NAT need many.
   */
  connections_per_ip: z.number().int().min(1).max(100_000).default(128),
  /** Blob transfers one peer may have open from this node at once; more are told "busy". */
  blob_streams_per_peer: z.number().int().min(1).max(1024).default(8),
});

/** The `[mesh]` section: the libp2p node. */
const MeshSectionSchema = z.strictObject({
  /** Where the mesh listens (TCP multiaddr); port 0 picks a free port. */
  listen: multiaddrText.default("/ip4/0.0.0.0/tcp/7412"),
  /** Peers to dial at start; none = wait as a bootstrap node for others. */
  bootstrap: z.array(peerMultiaddr).default([]),
  /** Fleet name: namespaces the topics so two fleets on one LAN never mix. */
  network: identifier.default("default"),
  /** Peer ids whose directives are accepted (the command post's keys). */
  trusted_issuers: z.array(peerId).default([]),
  /**
   * The fleet key (a swarm.key file from `loam keys fleet`): only peers holding the same key can
   * connect. Unset = an open mesh, which anyone who can reach the port can join.
   */
  fleet_key_file: z.string().min(1).optional(),
  /**
   * Peer ids admitted within the fleet (the trusted issuers are too); empty = every peer that
   * holds the fleet key.
   */
  allowed_peers: z.array(peerId).default([]),
  /** Find peers on the LAN by multicast DNS; unset = on with a fleet key, off without. */
  mdns: z.boolean().optional(),
  /** Seconds between capability adverts (also sent when something changes). */
  advert_interval: z.number().min(1).max(86400).default(30),
  /** Largest accepted wire message in bytes; bigger ones are dropped unread. */
  max_message_bytes: z.number().int().min(1024).max(16 * 1024 * 1024).default(1024 * 1024),
  limits: MeshLimitsSchema.prefault({}),
});

/** The `[api]` section: the local HTTP API. */
const ApiSectionSchema = z.strictObject({
  listen: listenAddress.default("127.0.0.1:7411"),
  public_metrics: z.boolean().default(false),
  max_body_bytes: z.number().int().min(1024).max(1024 * 1024 * 1024).default(1024 * 1024),
  drain_seconds: z.number().min(0).max(4).default(0),
  /**
   * A second listener serving only Ollama's routes (`/api/*`), for clients that expect port
   * 11434 and send no token; off by default, and loopback only.
   */
  ollama_listen: listenAddress.refine(
    // an address that does not parse is already refused above: zod runs every refinement
    (s) => isLoopback(parseListenAddress(s)?.hostname ?? "127.0.0.1"),
    "must be a loopback address (127.0.0.1:11434, [::1]:11434): its requests need no token",
  ).optional(),
  /** What a request without a token may do on `api.ollama_listen`. */
  ollama_scopes: z.array(z.enum(["infer:run", "status:read"])).default(["infer:run"]),
});

/** The `[deploy]` section: the deployment engine. */
const DeploySectionSchema = z.strictObject({
  /** Deployments downloading or activating at once; the rest wait by priority. */
  max_concurrent: z.number().int().min(1).max(64).default(2),
  /**
   * Hours a directive without `expires_at` stays in force after its `issued_at`: kept and handed
   * to nodes that come back online until then, ignored afterwards. Fractions are allowed; the
   * default, a week, outlasts most edge link outages.
   */
  directive_ttl_hours: z.number().positive().max(87_600).default(168),
});

/** The `[jobs]` section: each inference instance's job queue. */
const JobsSectionSchema = z.strictObject({
  /** Jobs waiting per instance before new ones get 429 with Retry-After. */
  max_queue: z.number().int().min(0).max(100_000).default(64),
  /** Limit for one job, queue wait included (504 past it). */
  timeout_seconds: z.number().min(0.1).max(86_400).default(120),
  /** Largest inference or chat request body (binary tensors can be big). */
  max_input_bytes: z.number().int().min(1024).max(4 * 1024 * 1024 * 1024).default(64 * 1024 * 1024),
});

/** The `[inference]` section: how ONNX and GGUF models run. */
const InferenceSectionSchema = z.strictObject({
  /** CPU threads per model; 0 = the number of physical cores. */
  threads: z.number().int().min(0).max(1024).default(0),
  /** GGUF context length when the directive gives none. */
  context_length: z.number().int().min(64).max(1_048_576).default(2048),
  /** GGUF layers offloaded to the GPU when the directive gives none; -1 = all with a GPU, else 0. */
  gpu_layers: z.number().int().min(-1).max(100_000).default(-1),
  /**
   * Run jobs that fleet peers forward here (`/loam/infer/1`). Unset = on with a fleet key, off
   * on an open mesh, where any stranger could otherwise spend this node's GPU.
   */
  accept_remote: z.boolean().optional(),
});

/** The `[workloads]` section: how deployed programs are confined. */
const WorkloadsSectionSchema = z.strictObject({
  /** When the agent runs as root, native programs run as this user ("" = as root). */
  user: z.string().regex(/^([a-z_][a-z0-9_-]{0,31})?$/, 'expected a user name or ""').default(
    "nobody",
  ),
});

/** The `[containers]` section: how container workloads run. */
const ContainersSectionSchema = z.strictObject({
  /** Host address the directive's ports are published on; 0.0.0.0 opens them to the network. */
  publish_address: z.string().regex(/^[0-9.]+$|^\[?[0-9a-f:]+\]?$/i, "expected an IP address")
    .default("127.0.0.1"),
  /** Extra global flags for podman (e.g. --root, --runroot, --storage-driver). */
  podman_args: z.array(z.string()).default([]),
  /** Extra global flags for docker (e.g. --host unix:///run/docker.sock). */
  docker_args: z.array(z.string()).default([]),
  /** Extra global flags for nerdctl (containerd), e.g. --namespace. */
  nerdctl_args: z.array(z.string()).default([]),
  /** Seconds a container gets to stop before it is killed. */
  stop_grace_seconds: z.number().int().min(0).max(300).default(5),
});

/** The `[wasm]` section: limits of WASM modules. */
const WasmSectionSchema = z.strictObject({
  /** Wall-time cap of a run-to-completion module when the directive gives none. */
  max_seconds: z.number().positive().max(86_400).default(300),
  /** Linear-memory cap when the directive gives none. */
  memory_mb: z.number().int().min(1).max(65_536).default(256),
  /** Whether `fs:` capabilities may name absolute host directories. */
  allow_absolute_paths: z.boolean().default(false),
});

/** The `[log]` section. */
const LogSectionSchema = z.strictObject({
  level: z.enum(["debug", "info", "warn", "error"]).default("info"),
  format: z.enum(["auto", "human", "json"]).default("auto"),
});

/** The `[data]` section: where state lives. */
const DataSectionSchema = z.strictObject({
  /** Data directory; default /var/lib/loam as root, else ~/.local/state/loam. */
  dir: z.string().min(1).optional(),
});

/** The `[fetch]` section: how artifacts are downloaded. */
const FetchSectionSchema = z.strictObject({
  /** Whether peers holding the blob are tried before or after the HTTP URLs. */
  sources: z.enum(["peers-first", "urls-first"]).default("peers-first"),
  /** Extra passes over the URL list after the first one fails with a transient error. */
  retries: z.number().int().min(0).max(100).default(5),
  backoff_initial_ms: z.number().int().min(1).max(600_000).default(500),
  backoff_max_ms: z.number().int().min(1).max(3_600_000).default(30_000),
  /** Overall limit for one blob, all attempts included. */
  timeout_seconds: z.number().min(1).max(7 * 86400).default(3600),
  /** An attempt that receives no byte for this long is dropped and retried. */
  stall_seconds: z.number().min(1).max(3600).default(60),
  max_concurrent: z.number().int().min(1).max(64).default(2),
  /** Bytes per second over all downloads; 0 = unlimited. */
  bandwidth_limit: z.number().int().min(0).default(0),
  /** PEM file of extra CA certificates trusted for HTTPS (on top of the built-in roots). */
  ca_file: z.string().min(1).optional(),
});

/** The `[blobs]` section: the content-addressed store. */
const BlobsSectionSchema = z.strictObject({
  /** Disk space kept free: a download that would eat into it is refused. */
  disk_reserve_mb: z.number().int().min(0).default(256),
  /** `loam blobs gc` removes partial downloads untouched for longer than this. */
  partial_max_age_hours: z.number().min(0).default(168),
});

/** The `[registry]` section: the replicated model and agent registry. */
const RegistrySectionSchema = z.strictObject({
  /** Documents kept per owner (tombstones included): no one node can flood the fleet's registry. */
  max_entries_per_owner: z.number().int().min(1).max(1_000_000).default(1000),
  /** A signed entry larger than this is refused. */
  max_entry_bytes: z.number().int().min(1024).max(1024 * 1024).default(65_536),
});

/** The whole configuration; every section is optional in input and filled with defaults. */
export const ConfigSchema = z.strictObject({
  node: NodeSectionSchema.prefault({}),
  api: ApiSectionSchema.prefault({}),
  mesh: MeshSectionSchema.prefault({}),
  fetch: FetchSectionSchema.prefault({}),
  blobs: BlobsSectionSchema.prefault({}),
  deploy: DeploySectionSchema.prefault({}),
  jobs: JobsSectionSchema.prefault({}),
  inference: InferenceSectionSchema.prefault({}),
  workloads: WorkloadsSectionSchema.prefault({}),
  containers: ContainersSectionSchema.prefault({}),
  wasm: WasmSectionSchema.prefault({}),
  registry: RegistrySectionSchema.prefault({}),
  log: LogSectionSchema.prefault({}),
  data: DataSectionSchema.prefault({}),
});

/** The validated, defaulted configuration. */
export type Config = z.infer<typeof ConfigSchema>;
