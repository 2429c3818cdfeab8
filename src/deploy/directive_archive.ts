import { join } from "node:path";
import { z } from "zod";
import type { DeploymentDirective } from "../protocol/directive.ts";
import type { RollbackOrder } from "../protocol/rollback.ts";
import { openEnvelope } from "../protocol/envelope.ts";
import type { OrderIds } from "../protocol/directives_sync.ts";
import { readBoundedJsonFile } from "../protocol/bounded_json.ts";
import { atomicWriteFile } from "../system/atomic_write.ts";
import type { Logger } from "../system/logger.ts";
import { inForceUntil } from "./directive_expiry.ts";
import { supersedes } from "./replacement.ts";

/** Directives, rollback orders and the ids of ended directives kept at most; the soonest to expire go first. */
const MAX_ARCHIVED = 1024;

/** What the archive made of an offered directive or rollback order. */
export type ArchiveVerdict =
  /** Not seen before and in force: act on it. */
  | "new"
  /** Already held (or its end is remembered): nothing to do. */
  | "known"
  /** A rollback order for it is held: it must never start. */
  | "rolled_back"
  /** A later directive for the same scope replaces it. */
  | "replaced"
  /** Past `expires_at` or `issued_at` + `deploy.directive_ttl_hours`. */
  | "expired";

type State = "in_force" | "rolled_back" | "replaced";

/** One archived message: the signed envelope while in force, only its id once it has ended. */
interface Entry {
  kind: "directive" | "rollback";
  id: string;
  /** A rollback's directive; a directive's own id. */
  directive_id: string;
  state: State;
  /** Epoch ms after which the entry is dropped. */
  until: number;
  /** The envelope as received (JSON text), signature included; absent once ended. */
  envelope?: string;
  /** The parsed directive of an envelope in force, for replacement checks. */
  directive?: DeploymentDirective;
}

const FileSchema = z.strictObject({
  kind: z.enum(["directive", "rollback"]),
  id: z.string(),
  directive_id: z.string(),
  state: z.enum(["in_force", "rolled_back", "replaced"]),
  until: z.iso.datetime(),
  envelope: z.string().optional(),
});

/** Options for {@link DirectiveArchive}. */
export interface ArchiveOptions {
  dir: string;
  /** `deploy.directive_ttl_hours`. */
  ttlHours: number;
  /** `mesh.trusted_issuers`: an archived envelope whose signer left the list is dropped at load. */
  trustedIssuers: string[];
  /** `mesh.max_message_bytes`, the limit archived envelopes are read back under. */
  maxMessageBytes: number;
  logger: Logger;
}

/**
 * The signed directives and rollback orders this node has accepted from trusted issuers and that
 * are still in force, kept as received (the issuer's signature included) in
 * `<data>/directives/`, so that a node that was offline when they went out can be handed them
 * later, by any node, with nothing to trust but the issuer's signature. A rolled-back or
 * replaced directive's envelope is dropped, its id kept until it would have expired, so that it
 * is neither handed on nor taken again from a peer that missed its end: in whichever order a
 * directive and its rollback arrive, the directive never starts. Every write is atomic; a file
 * that cannot be read back, or whose signature no longer verifies, is dropped at load.
 */
export class DirectiveArchive {
  readonly #options: ArchiveOptions;
  readonly #entries = new Map<string, Entry>();

  constructor(options: ArchiveOptions) {
    this.#options = options;
  }

  /** Reads the archive back, verifying every envelope again; returns the problems for the log. */
  async load(): Promise<string[]> {
    await Deno.mkdir(this.#options.dir, { recursive: true, mode: 0o700 });
    const problems: string[] = [];
    for await (const file of Deno.readDir(this.#options.dir)) {
      if (!file.isFile || !file.name.endsWith(".json")) continue;
      const path = join(this.#options.dir, file.name);
      const problem = await this.#loadFile(path).catch((err) => (err as Error).message);
      if (problem) {
        problems.push(`${path}: ${problem.split("\n")[0]}; dropped`);
        await Deno.remove(path).catch(() => {});
      }
    }
    await this.#prune();
    // a crash between two writes of one offer: finish it
    for (const entry of this.#live()) {
      if (this.#rollbackOf(entry.id)) await this.#end(entry, "rolled_back");
      else if (this.#live().some((e) => supersedes(e.directive!, entry.directive!))) {
        await this.#end(entry, "replaced");
      }
    }
    return problems;
  }

  async #loadFile(path: string): Promise<string | undefined> {
    const saved = FileSchema.parse(
      await readBoundedJsonFile(path, 2 * this.#options.maxMessageBytes + 4096),
    );
    const entry: Entry = { ...saved, until: Date.parse(saved.until), envelope: undefined };
    if (saved.envelope !== undefined) {
      const opened = await openEnvelope(
        new TextEncoder().encode(saved.envelope),
        this.#options.maxMessageBytes,
      );
      if (!opened.ok) return `envelope does not verify (${opened.detail})`;
      const { kind, signer, payload } = opened.message;
      if (kind !== saved.kind) return `holds a ${kind}, not a ${saved.kind}`;
      if (!this.#options.trustedIssuers.includes(signer)) {
        return `signed by ${signer}, no longer in mesh.trusted_issuers`;
      }
      const id = kind === "directive"
        ? payload.directive_id
        : kind === "rollback"
        ? payload.rollback_id
        : undefined;
      if (id !== saved.id) return `holds ${id}, not ${saved.id}`;
      entry.envelope = saved.envelope;
      if (kind === "directive") entry.directive = payload;
    }
    this.#entries.set(this.#key(entry.kind, entry.id), entry);
    return undefined;
  }

  /**
   * Takes a signed directive (its envelope as received). It is kept and `new` when in force and
   * neither rolled back nor replaced by one already held; a directive it replaces ends here.
   */
  async offerDirective(directive: DeploymentDirective, envelope: string): Promise<ArchiveVerdict> {
    const id = directive.directive_id;
    await this.#prune();
    if (this.#entries.has(this.#key("directive", id))) return "known";
    const until = inForceUntil(directive, this.#options.ttlHours);
    if (until < Date.now()) return "expired";
    const base = { kind: "directive" as const, id, directive_id: id, until };
    if (this.#rollbackOf(id)) {
      await this.#put({ ...base, state: "rolled_back" });
      return "rolled_back";
    }
    const live = this.#live();
    if (live.some((e) => supersedes(e.directive!, directive))) {
      await this.#put({ ...base, state: "replaced" });
      return "replaced";
    }
    await this.#put({ ...base, state: "in_force", envelope, directive });
    for (const older of live.filter((e) => supersedes(directive, e.directive!))) {
      await this.#end(older, "replaced");
    }
    return "new";
  }

  /**
   * Takes a signed rollback order: kept (until its directive would have expired, or for the
   * TTL when that directive is unknown here) and `new` unless already held; its directive's
   * envelope ends here.
   */
  async offerRollback(order: RollbackOrder, envelope: string): Promise<ArchiveVerdict> {
    await this.#prune();
    if (this.#entries.has(this.#key("rollback", order.rollback_id))) return "known";
    const target = this.#entries.get(this.#key("directive", order.directive_id));
    const until = Math.max(
      Date.parse(order.issued_at) + this.#options.ttlHours * 3600_000,
      target?.until ?? 0,
    );
    if (until < Date.now()) return "expired";
    await this.#put({
      kind: "rollback",
      id: order.rollback_id,
      directive_id: order.directive_id,
      state: "in_force",
      until,
      envelope,
    });
    if (target?.state === "in_force") await this.#end(target, "rolled_back");
    return "new";
  }

  /** Every id held, ended directives included: what a peer need not send. */
  ids(): OrderIds {
    const ids: OrderIds = { directives: [], rollbacks: [] };
    for (const entry of this.#entries.values()) {
      (entry.kind === "directive" ? ids.directives : ids.rollbacks).push(entry.id);
    }
    for (const entry of this.#entries.values()) {
      // a directive whose rollback is held is as good as ended here
      if (
        entry.kind === "rollback" && !this.#entries.has(this.#key("directive", entry.directive_id))
      ) {
        ids.directives.push(entry.directive_id);
      }
    }
    return ids;
  }

  /** The ids in `theirs` this node holds nothing about: what to ask a peer for. */
  lacking(theirs: OrderIds): OrderIds {
    const known = this.ids();
    const directives = new Set(known.directives);
    const rollbacks = new Set(known.rollbacks);
    return {
      directives: theirs.directives.filter((id) => !directives.has(id)),
      rollbacks: theirs.rollbacks.filter((id) => !rollbacks.has(id)),
    };
  }

  /**
   * The envelopes in force that a peer holding `have` lacks: rollback orders first (so that a
   * directive and its rollback arriving together never start it), then directives oldest first,
   * at most `maxCount` of them and `maxBytes` in all; `more` says some were left for a next round.
   */
  envelopesFor(
    have: OrderIds,
    limits: { maxCount: number; maxBytes: number },
  ): { envelopes: string[]; more: boolean } {
    const now = Date.now();
    const has = new Set([
      ...have.directives.map((id) => this.#key("directive", id)),
      ...have.rollbacks.map((id) => this.#key("rollback", id)),
    ]);
    const wanted = [...this.#entries.entries()]
      .filter(([key, e]) => e.envelope !== undefined && e.until >= now && !has.has(key))
      .map(([, e]) => e)
      .sort((a, b) =>
        (a.kind === "rollback" ? 0 : 1) - (b.kind === "rollback" ? 0 : 1) ||
        (a.directive?.issued_at ?? "").localeCompare(b.directive?.issued_at ?? "")
      );
    const envelopes: string[] = [];
    let bytes = 0;
    for (const entry of wanted) {
      const size = entry.envelope!.length;
      if (envelopes.length >= limits.maxCount || (bytes + size > limits.maxBytes && bytes > 0)) {
        return { envelopes, more: true };
      }
      envelopes.push(entry.envelope!);
      bytes += size;
    }
    return { envelopes, more: false };
  }

  #key(kind: Entry["kind"], id: string): string {
    return `${kind}-${id}`;
  }

  #live(): Entry[] {
    return [...this.#entries.values()].filter((e) => e.kind === "directive" && e.directive);
  }

  #rollbackOf(directiveId: string): Entry | undefined {
    return [...this.#entries.values()].find((e) =>
      e.kind === "rollback" && e.directive_id === directiveId
    );
  }

  async #end(entry: Entry, state: "rolled_back" | "replaced"): Promise<void> {
    await this.#put({ ...entry, state, envelope: undefined, directive: undefined });
  }

  /** Keeps `entry` in memory, then on disk; a failed write is logged (memory stays truthful). */
  async #put(entry: Entry): Promise<void> {
    const key = this.#key(entry.kind, entry.id);
    this.#entries.set(key, entry);
    while (this.#entries.size > MAX_ARCHIVED) {
      const [soonest] = [...this.#entries.entries()].sort((a, b) => a[1].until - b[1].until)[0]!;
      await this.#drop(soonest);
    }
    if (!this.#entries.has(key)) return;
    const file = {
      kind: entry.kind,
      id: entry.id,
      directive_id: entry.directive_id,
      state: entry.state,
      until: new Date(entry.until).toISOString(),
      ...(entry.envelope === undefined ? {} : { envelope: entry.envelope }),
    };
    await atomicWriteFile(this.#pathOf(key), JSON.stringify(file) + "\n", { mode: 0o600 })
      .catch((err) =>
        this.#options.logger.error("archived directive not written", {
          id: entry.id,
          error: (err as Error).message,
        })
      );
  }

  async #drop(key: string): Promise<void> {
    this.#entries.delete(key);
    await Deno.remove(this.#pathOf(key)).catch(() => {});
  }

  /** Drops what has expired. */
  async #prune(): Promise<void> {
    const now = Date.now();
    for (const [key, entry] of [...this.#entries.entries()]) {
      if (entry.until < now) await this.#drop(key);
    }
  }

  #pathOf(key: string): string {
    return join(this.#options.dir, `${key}.json`);
  }
}
