import { lpStream } from "@libp2p/utils";
import type { PeerId, Stream } from "@libp2p/interface";
import { fromString as bytesFromString } from "uint8arrays/from-string";
import { toString as bytesToString } from "uint8arrays/to-string";
import { Counter, type Registry } from "prom-client";
import type { z } from "zod";
import type { MeshNode } from "./node.ts";
import { openEnvelope } from "../protocol/envelope.ts";
import {
  MAX_SYNC_ENVELOPES,
  type OrderIds,
  type SignedOrder,
  SyncAnswerSchema,
  SyncPushSchema,
  SyncRequestSchema,
} from "../protocol/directives_sync.ts";
import { parseBoundedJson } from "../protocol/bounded_json.ts";
import type { Logger } from "../system/logger.ts";

/** The late-node catch-up protocol (see src/protocol/directives_sync.ts for its messages). */
export const DIRECTIVES_SYNC_PROTOCOL = "/loam/directives-sync/1";

/** How long one whole exchange may take. */
const EXCHANGE_TIMEOUT_MS = 15_000;
/** Exchanges in a row with one peer while it says more are left. */
const MAX_ROUNDS = 16;
/** Gains within this window are handed on to the other peers in one go. */
const SPREAD_DEBOUNCE_MS = 500;
/** Envelope text per message, at least; one larger envelope still travels alone. */
const BATCH_BYTES = 4 * 1024 * 1024;

/** What the sync reads from the node's archive of signed orders. */
export interface SyncLedger {
  /** Every id held, ended directives included. */
  ids(): OrderIds;
  /** The ids in `theirs` the archive holds nothing about. */
  lacking(theirs: OrderIds): OrderIds;
  /** Envelopes in force that a holder of `have` lacks, within the limits. */
  envelopesFor(
    have: OrderIds,
    limits: { maxCount: number; maxBytes: number },
  ): { envelopes: string[]; more: boolean };
}

/** Options for {@link DirectivesSync.start}. */
export interface DirectivesSyncOptions {
  node: MeshNode;
  ledger: SyncLedger;
  /** `mesh.trusted_issuers`: an envelope signed by anyone else is refused. */
  trustedIssuers: string[];
  maxMessageBytes: number;
  /** Takes verified orders, rollbacks first; resolves with how many were new to this node. */
  receive(orders: SignedOrder[]): Promise<number>;
  /**
   * Told the ids of the directives `peer` just handed over, so the fleet's statuses of them can
   * be asked of that peer too.
   */
  received?(peer: PeerId, directiveIds: string[]): void;
  registry: Registry;
  logger: Logger;
}

/**
 * Hands signed directives and rollback orders to nodes that missed them, over direct streams:
 * with every peer that connects, and again with every connected peer after this node learned
 * something new (so that an order crosses a chain of nodes that never meet its issuer). Each
 * exchange sends only what the other side lacks, within count and byte limits; nothing is
 * gossiped. What arrives is verified as a fresh message would be: issuer signature, a trusted
 * issuer, the schema.
 */
export class DirectivesSync {
  readonly #options: DirectivesSyncOptions;
  readonly #envelopes: Counter<"outcome">;
  readonly #exchanges: Counter<"side">;
  readonly #maxData: number;
  readonly #batchBytes: number;
  #spread?: ReturnType<typeof setTimeout>;
  #stopped = false;
  readonly #onConnect = (evt: CustomEvent<PeerId>) => void this.#syncWith(evt.detail);

  private constructor(options: DirectivesSyncOptions) {
    this.#options = options;
    this.#batchBytes = Math.max(BATCH_BYTES, options.maxMessageBytes);
    // base64 of the envelopes, plus two id lists
    this.#maxData = Math.ceil(this.#batchBytes * 4 / 3) + 2 * 1024 * 1024;
    this.#envelopes = new Counter({
      name: "loam_directives_sync_envelopes_total",
      help: "Signed directives and rollback orders exchanged with peers over " +
        `${DIRECTIVES_SYNC_PROTOCOL}: sent, received (verified) or rejected.`,
      labelNames: ["outcome"],
      registers: [options.registry],
    });
    this.#exchanges = new Counter({
      name: "loam_directives_sync_exchanges_total",
      help: `Completed ${DIRECTIVES_SYNC_PROTOCOL} exchanges, by side: opened by this node, or ` +
        "answered for a peer.",
      labelNames: ["side"],
      registers: [options.registry],
    });
  }

  /** Serves the protocol and exchanges with the peers already connected and every later one. */
  static async start(options: DirectivesSyncOptions): Promise<DirectivesSync> {
    const sync = new DirectivesSync(options);
    await options.node.handle(
      DIRECTIVES_SYNC_PROTOCOL,
      (stream, connection) => void sync.#answer(stream, connection.remotePeer),
      { maxInboundStreams: 2 },
    );
    options.node.addEventListener("peer:connect", sync.#onConnect);
    sync.#spreadNow();
    return sync;
  }

  /** Stops starting exchanges (the node's stop ends the open ones). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#spread);
    this.#options.node.removeEventListener("peer:connect", this.#onConnect);
  }

  #spreadSoon(): void {
    clearTimeout(this.#spread);
    this.#spread = setTimeout(() => this.#spreadNow(), SPREAD_DEBOUNCE_MS);
  }

  #spreadNow(): void {
    for (const peer of this.#options.node.getPeers()) void this.#syncWith(peer);
  }

  /** Opens exchanges with `peer` until it has nothing more to send (bounded). */
  async #syncWith(peer: PeerId): Promise<void> {
    const log = this.#options.logger;
    for (let round = 0; round < MAX_ROUNDS && !this.#stopped; round++) {
      const signal = AbortSignal.timeout(EXCHANGE_TIMEOUT_MS);
      let stream: Stream | undefined;
      try {
        stream = await this.#options.node.dialProtocol(peer, DIRECTIVES_SYNC_PROTOCOL, { signal });
        const lp = lpStream(stream, { maxDataLength: this.#maxData });
        await lp.write(this.#encode({ have: this.#options.ledger.ids() }), { signal });
        const answer = this.#decode(SyncAnswerSchema, await lp.read({ signal }));
        const gained = await this.#take(answer.envelopes, peer);
        const push = this.#options.ledger.envelopesFor(this.#wantedAsHave(answer.want), {
          maxCount: MAX_SYNC_ENVELOPES,
          maxBytes: this.#batchBytes,
        });
        await lp.write(this.#encode({ envelopes: this.#pack(push.envelopes) }), { signal });
        await stream.close({ signal });
        this.#exchanges.inc({ side: "opened" });
        if (gained > 0) this.#spreadSoon();
        if (!answer.more) return;
      } catch (err) {
        stream?.abort(err as Error);
        log.debug("directives sync with peer ended", { peer: peer.toString(), error: err });
        return;
      }
    }
  }

  /** The answering side of one exchange. */
  async #answer(stream: Stream, peer: PeerId): Promise<void> {
    const signal = AbortSignal.timeout(EXCHANGE_TIMEOUT_MS);
    try {
      const lp = lpStream(stream, { maxDataLength: this.#maxData });
      const { have } = this.#decode(SyncRequestSchema, await lp.read({ signal }));
      const { envelopes, more } = this.#options.ledger.envelopesFor(have, {
        maxCount: MAX_SYNC_ENVELOPES,
        maxBytes: this.#batchBytes,
      });
      const want = this.#options.ledger.lacking(have);
      await lp.write(this.#encode({ envelopes: this.#pack(envelopes), more, want }), { signal });
      const pushed = this.#decode(SyncPushSchema, await lp.read({ signal }));
      await stream.close({ signal });
      this.#exchanges.inc({ side: "answered" });
      if (await this.#take(pushed.envelopes, peer) > 0) this.#spreadSoon();
    } catch (err) {
      stream.abort(err as Error);
      this.#options.logger.debug("directives sync request failed", {
        peer: peer.toString(),
        error: err,
      });
    }
  }

  /**
   * A want list read as a have list: envelopesFor sends what a holder lacks, so hand it what
   * the peer does not want, i.e. everything held except the wanted ids.
   */
  #wantedAsHave(want: OrderIds): OrderIds {
    const ids = this.#options.ledger.ids();
    const wanted = { d: new Set(want.directives), r: new Set(want.rollbacks) };
    return {
      directives: ids.directives.filter((id) => !wanted.d.has(id)),
      rollbacks: ids.rollbacks.filter((id) => !wanted.r.has(id)),
    };
  }

  /** Verifies envelopes from `peer` and hands the good ones on; returns how many were new. */
  async #take(packed: string[], peer: PeerId): Promise<number> {
    const orders: SignedOrder[] = [];
    for (const text of packed) {
      const problem = await this.#open(text, orders).catch((err) => (err as Error).message);
      if (problem) {
        this.#envelopes.inc({ outcome: "rejected" });
        this.#options.logger.debug("synced envelope rejected", {
          peer: peer.toString(),
          problem,
        });
      }
    }
    if (orders.length === 0) return 0;
    this.#envelopes.inc({ outcome: "received" }, orders.length);
    orders.sort((a, b) => (a.kind === "rollback" ? 0 : 1) - (b.kind === "rollback" ? 0 : 1));
    const gained = await this.#options.receive(orders);
    const directives = orders.flatMap((o) =>
      o.kind === "directive" ? [o.payload.directive_id] : []
    );
    if (directives.length > 0) this.#options.received?.(peer, directives);
    return gained;
  }

  /** Adds the order in `packed` to `into`, or says why it is refused. */
  async #open(packed: string, into: SignedOrder[]): Promise<string | undefined> {
    const bytes = bytesFromString(packed, "base64pad");
    const opened = await openEnvelope(bytes, this.#options.maxMessageBytes);
    if (!opened.ok) return `${opened.reason}: ${opened.detail}`;
    const { kind, signer, payload } = opened.message;
    if (!this.#options.trustedIssuers.includes(signer)) return `untrusted issuer ${signer}`;
    const envelope = new TextDecoder().decode(bytes);
    if (kind === "directive") into.push({ kind, payload, envelope });
    else if (kind === "rollback") into.push({ kind, payload, envelope });
    else return `a ${kind} is not a directive or a rollback order`;
    return undefined;
  }

  #pack(envelopes: string[]): string[] {
    this.#envelopes.inc({ outcome: "sent" }, envelopes.length);
    return envelopes.map((text) => bytesToString(new TextEncoder().encode(text), "base64pad"));
  }

  #encode(message: unknown): Uint8Array {
    return new TextEncoder().encode(JSON.stringify(message));
  }

  #decode<S extends z.ZodType>(schema: S, bytes: { subarray(): Uint8Array }): z.infer<S> {
    const json = parseBoundedJson(new TextDecoder().decode(bytes.subarray()), {
      maxBytes: this.#maxData,
    });
    return schema.parse(json);
  }
}
