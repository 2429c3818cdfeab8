import { z } from "zod";
import { parseListenAddress } from "./listen_address.ts";

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
export const NodeSectionSchema = z.strictObject({
  /** Node id used in directives' node scopes and status; defaults to the host name. */
  id: identifier.default(() => Deno.hostname()),
  /** Formation (group) this node belongs to, if any. */
  formation_id: identifier.optional(),
  /** Extra capabilities this node advertises beyond those detected. */
  capabilities: z.array(capability).default([]),
});

/** The `[api]` section: the local HTTP API. */
export const ApiSectionSchema = z.strictObject({
  listen: listenAddress.default("127.0.0.1:7411"),
  public_metrics: z.boolean().default(false),
  max_body_bytes: z.number().int().min(1024).max(1024 * 1024 * 1024).default(1024 * 1024),
  drain_seconds: z.number().min(0).max(4).default(0),
});

/** The `[log]` section. */
export const LogSectionSchema = z.strictObject({
  level: z.enum(["debug", "info", "warn", "error"]).default("info"),
  format: z.enum(["auto", "human", "json"]).default("auto"),
});

/** The `[data]` section: where state lives. */
export const DataSectionSchema = z.strictObject({
  /** Data directory; default /var/lib/loam as root, else ~/.local/state/loam. */
  dir: z.string().min(1).optional(),
});

/** The whole configuration; every section is optional in input and filled with defaults. */
export const ConfigSchema = z.strictObject({
  node: NodeSectionSchema.prefault({}),
  api: ApiSectionSchema.prefault({}),
  log: LogSectionSchema.prefault({}),
  data: DataSectionSchema.prefault({}),
});

/** The validated, defaulted configuration. */
export type Config = z.infer<typeof ConfigSchema>;
