/**
 * The model and agent registry of one node: one signed register per entry, as the marketplace
 * reference keeps them (a BFT register keyed by id). Every document is its owner's signed JSON
 * with a revision only the owner raises, a delete is a signed tombstone, and merging keeps per
 * id the valid document that wins ({@link wins}): a state-based CRDT whose states keep their
 * signatures, so any node can hand any entry on and every receiver can check it.
 * @module
 */
import type { PrivateKey } from "@libp2p/interface";
import { openEnvelope, sealEnvelope } from "../protocol/envelope.ts";
import {
  ENTRY_SCHEMAS,
  type EntryKind,
  ID_FIELD,
  mayPublish,
  type RegistryDocument,
} from "../protocol/registry_entry.ts";
import { atomicWriteFile } from "../system/atomic_write.ts";
import { readBoundedJsonFile } from "../protocol/bounded_json.ts";
import { HttpError } from "../system/http_error.ts";
import type { RegistryDigest } from "../protocol/registry_sync.ts";
import { sha256Hex } from "../blobs/digest.ts";

/** The registry file: this many bytes at most (1,000 entries of 64 KiB for 4 owners). */
const MAX_FILE_BYTES = 256 * 1024 * 1024;

/** Why a document was not merged (the `reason` label of the rejected counter). */
export type RejectReason = "invalid" | "oversized" | "not_owner" | "owner_limit";

/** What merging one document did. */
export type MergeOutcome = "added" | "updated" | "unchanged" | { rejected: RejectReason };

/** An entry as the API shows it: the published fields, its owner, revision and times. */
export type EntryView = Record<string, unknown> & {
  owner_id: string;
  revision: number;
  created_at: string;
  updated_at: string;
};

/** What a registry store is built from. */
export interface RegistryOptions {
  /** `<data>/registry.json`. */
  path: string;
  /** This node's peer id and key: its entries are the ones it may change. */
  self: string;
  privateKey: PrivateKey;
  /** `registry.max_entries_per_owner`: documents kept per owner, tombstones included. */
  maxEntriesPerOwner: number;
  /** A signed document larger than this is refused. */
  maxDocumentBytes: number;
  /** Trusted issuers: a tombstone signed by one deletes any entry (moderation). */
  moderators: readonly string[];
  /** Told each document refused, with why (for /metrics). */
  onRejected?(reason: RejectReason): void;
}

interface Kept {
  doc: RegistryDocument;
  signer: string;
  envelope: string;
  /** Hex SHA-256 of the envelope: the tie-break every node computes alike. */
  hash: string;
}

/** Search filters of `POST /v1/registry/models/search`. */
export interface SearchFilters {
  type?: string;
  framework?: string;
  quantization?: string;
  tags?: string[];
  capability?: string;
  text?: string;
  /** Keeps only the entries whose manifest this node meets (`can_run_on`). */
  fits?: (entry: EntryView) => boolean;
}

const keyOf = (kind: EntryKind, id: string) => `${kind}/${id}`;

/**
 * Whether `a` beats `b` for the same id, the same on every node whatever the order documents
 * arrive in: a moderator's tombstone beats anything; then the higher revision; at the same
 * revision a tombstone beats an entry; then the lower envelope hash.
 */
function wins(a: Kept, b: Kept): boolean {
  const moderated = (k: Kept) => k.doc.deleted && k.signer !== k.doc.owner_id;
  if (moderated(a) !== moderated(b)) return moderated(a);
  if (a.doc.revision !== b.doc.revision) return a.doc.revision > b.doc.revision;
  if (a.doc.deleted !== b.doc.deleted) return a.doc.deleted;
  return a.hash < b.hash;
}

/** The registry: documents by kind and id, persisted atomically under the data dir. */
export class RegistryStore {
  readonly #o: RegistryOptions;
  readonly #docs = new Map<string, Kept>();
  /** Documents kept per owner (they are never dropped: a tombstone replaces an entry). */
  readonly #perOwner = new Map<string, number>();
  #saving: Promise<void> = Promise.resolve();
  readonly #listeners: ((envelope: Uint8Array) => void)[] = [];

  private constructor(options: RegistryOptions) {
    this.#o = options;
  }

  /**
   * Loads the registry file, verifying every document again (a changed file or a moderator no
   * longer trusted loses what it no longer proves); a missing file is an empty registry.
   * @throws an Error naming the file when it is not the registry's
   */
  static async open(options: RegistryOptions): Promise<RegistryStore> {
    const store = new RegistryStore(options);
    let json: unknown;
    try {
      json = await readBoundedJsonFile(options.path, MAX_FILE_BYTES);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return store;
      throw new Error(`registry file ${options.path} is unreadable: ${(err as Error).message}`);
    }
    const documents = (json as { documents?: unknown })?.documents;
    if (!Array.isArray(documents)) {
      throw new Error(`registry file ${options.path} holds no "documents" list`);
    }
    for (const text of documents) {
      if (typeof text === "string") await store.#merge(new TextEncoder().encode(text), false);
    }
    return store;
  }

  /** The live entries of `kind`, by id. */
  list(kind: EntryKind): EntryView[] {
    return [...this.#docs.values()].filter((k) => k.doc.kind === kind && !k.doc.deleted)
      .map((k) => view(k.doc)).sort((a, b) =>
        String(a[ID_FIELD[kind]]).localeCompare(String(b[ID_FIELD[kind]]))
      );
  }

  /** The live entry `kind`/`id`, if any. */
  get(kind: EntryKind, id: string): EntryView | undefined {
    const kept = this.#docs.get(keyOf(kind, id));
    return kept && !kept.doc.deleted ? view(kept.doc) : undefined;
  }

  /** The live entries of `kind` that pass every filter given. */
  search(kind: EntryKind, f: SearchFilters): EntryView[] {
    const lower = (v: unknown) => String(v ?? "").toLowerCase();
    return this.list(kind).filter((e) =>
      (f.type === undefined || lower(e.model_type ?? e.agent_type) === lower(f.type)) &&
      (f.framework === undefined || lower(e.framework) === lower(f.framework)) &&
      (f.quantization === undefined || lower(e.quantization) === lower(f.quantization)) &&
      (f.tags ?? []).every((t) => (e.tags as string[]).includes(t)) &&
      (f.capability === undefined || (e.capabilities as string[]).includes(f.capability)) &&
      (f.text === undefined ||
        [e[ID_FIELD[kind]], e.name, e.description].some((v) => lower(v).includes(lower(f.text)))) &&
      (f.fits === undefined || f.fits(e))
    );
  }

  /**
   * Publishes `input` as this node's entry (POST: a new id; PUT with `id`: a new revision of
   * one of its own). 400 names the invalid field, 403 an entry another node owns, 404 a PUT of
   * an id nobody published, 409 a POST of an id already published, 413 an entry too large.
   */
  async publish(kind: EntryKind, input: unknown, id?: string): Promise<EntryView> {
    const parsed = ENTRY_SCHEMAS[kind].safeParse(input);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new HttpError(
        400,
        "invalid_request",
        `${kind} entry: ${issue.path.join(".") || "body"}: ${issue.message}`,
      );
    }
    const entry = parsed.data as Record<string, unknown>;
    const entryId = String(entry[ID_FIELD[kind]]);
    if (id !== undefined && entryId !== id) {
      throw new HttpError(
        400,
        "invalid_request",
        `${ID_FIELD[kind]} "${entryId}" is not the path's id "${id}"`,
      );
    }
    const kept = this.#docs.get(keyOf(kind, entryId));
    this.#mayChange(kept, kind, entryId);
    if (id === undefined && kept && !kept.doc.deleted) {
      throw new HttpError(
        409,
        "conflict",
        `${kind} ${entryId} exists; change it with PUT /v1/registry/${kind}s/${entryId}`,
      );
    }
    if (id !== undefined && (!kept || kept.doc.deleted)) {
      throw new HttpError(404, "not_found", `no ${kind} ${entryId} in the registry`);
    }
    const now = new Date().toISOString();
    const doc: RegistryDocument = {
      kind,
      id: entryId,
      owner_id: this.#o.self,
      revision: (kept?.doc.revision ?? 0) + 1,
      created_at: kept && !kept.doc.deleted ? kept.doc.created_at : now,
      updated_at: now,
      deleted: false,
      entry: entry as RegistryDocument["entry"],
    };
    await this.#sign(doc);
    return view(doc);
  }

  /**
   * Deletes `kind`/`id` with a signed tombstone: the owner's (a new revision), or, from a node
   * among the trusted issuers, a moderator's, which deletes any entry for good.
   */
  async remove(kind: EntryKind, id: string): Promise<void> {
    const kept = this.#docs.get(keyOf(kind, id));
    if (!kept || kept.doc.deleted) {
      throw new HttpError(404, "not_found", `no ${kind} ${id} in the registry`);
    }
    const moderating = kept.doc.owner_id !== this.#o.self;
    if (moderating && !this.#o.moderators.includes(this.#o.self)) this.#mayChange(kept, kind, id);
    const { entry: _, ...rest } = kept.doc;
    await this.#sign({
      ...rest,
      revision: kept.doc.revision + (moderating ? 0 : 1),
      updated_at: new Date().toISOString(),
      deleted: true,
    });
  }

  /** Takes a document another node sent, if it is valid and wins over the one kept. */
  merge(envelope: Uint8Array): Promise<MergeOutcome> {
    return this.#merge(envelope, true);
  }

  /**
   * Takes a document whose envelope was already opened and its signature checked (the gossip
   * validator's work), if its signer may publish it and it wins over the one kept.
   */
  async mergeOpened(
    doc: RegistryDocument,
    signer: string,
    envelope: string,
  ): Promise<MergeOutcome> {
    return await this.#apply(doc, signer, envelope, true);
  }

  /**
   * Takes many documents (a sync's batch), written to disk once; resolves with how many changed
   * what this node holds.
   */
  async mergeAll(envelopes: Uint8Array[]): Promise<number> {
    let gained = 0;
    for (const envelope of envelopes) {
      const outcome = await this.#merge(envelope, false);
      if (outcome === "added" || outcome === "updated") gained++;
    }
    if (gained > 0) await this.#save();
    return gained;
  }

  /** Calls `listener` with each document this node signs (to publish it to the fleet). */
  onSigned(listener: (envelope: Uint8Array) => void): void {
    this.#listeners.push(listener);
  }

  /** `[kind/id, hash]` of every document held, tombstones included. */
  digest(): RegistryDigest {
    return [...this.#docs].map(([key, kept]) => [key, kept.hash]);
  }

  /**
   * The documents a holder of `theirs` lacks or holds in another version (of the keys in
   * `only`, when given), up to the limits; `more` says some were left for another round.
   */
  documentsFor(
    theirs: RegistryDigest,
    limits: { maxCount: number; maxBytes: number },
    only?: ReadonlySet<string>,
  ): { documents: string[]; more: boolean } {
    const held = new Map(theirs);
    const documents: string[] = [];
    let bytes = 0;
    for (const [key, kept] of this.#docs) {
      if ((only && !only.has(key)) || held.get(key) === kept.hash) continue;
      if (
        documents.length >= limits.maxCount || (documents.length > 0 &&
          bytes + kept.envelope.length > limits.maxBytes)
      ) {
        return { documents, more: true };
      }
      documents.push(kept.envelope);
      bytes += kept.envelope.length;
    }
    return { documents, more: false };
  }

  /** The keys of `theirs` held here in no version or in another one. */
  wanted(theirs: RegistryDigest): string[] {
    return theirs.filter(([key, hash]) => this.#docs.get(key)?.hash !== hash).map(([key]) => key);
  }

  /** Every kept document as signed, tombstones included (for peers that lack them). */
  envelopes(): string[] {
    return [...this.#docs.values()].map((k) => k.envelope);
  }

  /** Resolves once every change so far is on disk. */
  async flushed(): Promise<void> {
    await this.#saving;
  }

  #mayChange(kept: Kept | undefined, kind: EntryKind, id: string): void {
    if (kept && kept.doc.owner_id !== this.#o.self) {
      throw new HttpError(
        403,
        "forbidden",
        `${kind} ${id} belongs to ${kept.doc.owner_id}: only its owner may change it`,
      );
    }
  }

  async #sign(doc: RegistryDocument): Promise<void> {
    const sealed = await sealEnvelope("registry_entry", doc, this.#o.privateKey, this.#o.self);
    if (sealed.length > this.#o.maxDocumentBytes) {
      throw new HttpError(
        413,
        "too_large",
        `the signed entry is ${sealed.length} bytes; at most ${this.#o.maxDocumentBytes}`,
      );
    }
    const outcome = await this.#apply(doc, this.#o.self, new TextDecoder().decode(sealed), false);
    if (outcome === "added" || outcome === "updated") {
      for (const listener of this.#listeners) listener(sealed);
    }
    if (typeof outcome === "object") {
      throw new HttpError(
        409,
        "conflict",
        outcome.rejected === "owner_limit"
          ? `this node already has ${this.#o.maxEntriesPerOwner} entries (registry.max_entries_per_owner)`
          : `the entry was refused (${outcome.rejected})`,
      );
    }
    await this.#save();
  }

  /** Opens and verifies `envelope`, then {@link #apply}. */
  async #merge(envelope: Uint8Array, persist: boolean): Promise<MergeOutcome> {
    if (envelope.length > this.#o.maxDocumentBytes) return this.#reject("oversized");
    const opened = await openEnvelope(envelope, this.#o.maxDocumentBytes);
    if (!opened.ok || opened.message.kind !== "registry_entry") return this.#reject("invalid");
    const { signer, payload: doc } = opened.message;
    return await this.#apply(doc, signer, new TextDecoder().decode(envelope), persist);
  }

  #reject(reason: RejectReason): MergeOutcome {
    this.#o.onRejected?.(reason);
    return { rejected: reason };
  }

  /** Keeps a verified document (as `text`, signed by `signer`) if it may and it wins. */
  async #apply(
    doc: RegistryDocument,
    signer: string,
    text: string,
    persist: boolean,
  ): Promise<MergeOutcome> {
    if (!mayPublish(doc, signer, this.#o.moderators)) return this.#reject("not_owner");
    const candidate: Kept = { doc, signer, envelope: text, hash: sha256Hex(text) };
    const key = keyOf(doc.kind, doc.id);
    const kept = this.#docs.get(key);
    if (kept && kept.hash === candidate.hash) return "unchanged";
    if (kept && !wins(candidate, kept)) return "unchanged";
    const owned = this.#perOwner.get(doc.owner_id) ?? 0;
    if (!kept && owned >= this.#o.maxEntriesPerOwner) return this.#reject("owner_limit");
    if (!kept) this.#perOwner.set(doc.owner_id, owned + 1);
    this.#docs.set(key, candidate);
    if (persist) await this.#save();
    return kept ? "updated" : "added";
  }

  /** Writes every document (atomically: temp, fsync, rename), one write after another. */
  #save(): Promise<void> {
    this.#saving = this.#saving.catch(() => {}).then(() =>
      atomicWriteFile(
        this.#o.path,
        JSON.stringify({ version: 1, documents: this.envelopes() }) + "\n",
        { mode: 0o600 },
      )
    );
    return this.#saving;
  }
}

/** A document's entry as the API shows it. */
function view(doc: RegistryDocument): EntryView {
  return {
    ...(doc.entry as Record<string, unknown>),
    owner_id: doc.owner_id,
    revision: doc.revision,
    created_at: doc.created_at,
    updated_at: doc.updated_at,
  };
}
