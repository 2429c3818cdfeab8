import type { PeerId } from "@libp2p/interface";
import { fromString as bytesFromString } from "uint8arrays/from-string";
import { toString as bytesToString } from "uint8arrays/to-string";
import { Counter, type Registry } from "prom-client";
import type { MeshNode } from "./node.ts";
import { type ExchangeStream, PeerExchange } from "./peer_exchange.ts";
import { openEnvelope } from "../protocol/envelope.ts";
import {
  MAX_SYNC_ENVELOPES,
  type OrderIds,
  type SignedOrder,
  SyncAnswerSchema,
  SyncPushSchema,
  SyncRequestSchema,
} from "../protocol/directives_sync.ts";
import type { Logger } from "../system/logger.ts";

/** The late-node catch-up protocol (see src/protocol/directives_sync.ts for its messages). */
export const DIRECTIVES_SYNC_PROTOCOL = "/loam/directives-sync/1";

/** How long one whole exchange may take. */
const EXCHANGE_TIMEOUT_MS = 15_000;
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
 * Hands signed directives and rollback orders to nodes that missed them, over direct streams
 * (see {@link PeerExchange} for when: so that an order crosses a chain of nodes that never meet
 * its issuer). Each exchange sends only what the other side lacks, within count and byte limits;
 * nothing is gossiped. What arrives is verified as a fresh message would be: issuer signature,
 * a trusted issuer, the schema.
 */
export class DirectivesSync {
  readonly #options: DirectivesSyncOptions;
  readonly #envelopes: Counter<"outcome">;
  readonly #exchanges: Counter<"side">;
  readonly #batchBytes: number;
  #exchange?: PeerExchange;

  private constructor(options: DirectivesSyncOptions) {
    this.#options = options;
    this.#batchBytes = Math.max(BATCH_BYTES, options.maxMessageBytes);
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
    sync.#exchange = await PeerExchange.start({
      node: options.node,
      protocol: DIRECTIVES_SYNC_PROTOCOL,
      // base64 of the envelopes, plus two id lists
      maxMessageBytes: Math.ceil(sync.#batchBytes * 4 / 3) + 2 * 1024 * 1024,
      timeoutMs: EXCHANGE_TIMEOUT_MS,
      logger: options.logger,
      completed: (side) => sync.#exchanges.inc({ side }),
      sides: {
        open: (stream, peer) => sync.#opening(stream, peer),
        answer: (stream, peer) => sync.#answer(stream, peer),
      },
    });
    return sync;
  }

  /** Stops starting exchanges (the node's stop ends the open ones). */
  stop(): void {
    this.#exchange?.stop();
  }

  #limits() {
    return { maxCount: MAX_SYNC_ENVELOPES, maxBytes: this.#batchBytes };
  }

  /** The opening side of one exchange. */
  async #opening(stream: ExchangeStream, peer: PeerId): Promise<{ gained: number; more: boolean }> {
    const { ledger } = this.#options;
    await stream.send({ have: ledger.ids() });
    const answer = await stream.receive(SyncAnswerSchema);
    const gained = await this.#take(answer.envelopes, peer);
    const push = ledger.envelopesFor(this.#wantedAsHave(answer.want), this.#limits());
    await stream.send({ envelopes: this.#pack(push.envelopes) });
    return { gained, more: answer.more };
  }

  /** The answering side of one exchange. */
  async #answer(stream: ExchangeStream, peer: PeerId): Promise<number> {
    const { ledger } = this.#options;
    const { have } = await stream.receive(SyncRequestSchema);
    const { envelopes, more } = ledger.envelopesFor(have, this.#limits());
    const want = ledger.lacking(have);
    await stream.send({ envelopes: this.#pack(envelopes), more, want });
    return await this.#take((await stream.receive(SyncPushSchema)).envelopes, peer);
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
}
