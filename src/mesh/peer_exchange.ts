/**
 * What the catch-up protocols (`/loam/directives-sync/1`, `/loam/registry-sync/1`) share: one
 * exchange per stream of length-prefixed JSON, opened with every peer that connects and again
 * with every connected peer after this node gained something (so that what one node learned
 * crosses chains of nodes), repeated while the other side says more is left, each bounded in
 * time. A protocol gives only its two sides.
 * @module
 */
import type { PeerId, Stream } from "@libp2p/interface";
import type { MeshNode } from "./node.ts";
import { JsonMessages } from "./json_messages.ts";
import type { Logger } from "../system/logger.ts";

/** Exchanges in a row with one peer while it says more are left. */
const MAX_ROUNDS = 16;
/** Gains within this window are handed on to the other peers in one go. */
const SPREAD_DEBOUNCE_MS = 500;

/** One exchange's stream: JSON messages in and out, within the size limit and the time. */
export type ExchangeStream = Pick<JsonMessages, "send" | "receive">;

/** The two sides of a protocol's exchange. */
export interface ExchangeSides {
  /** The opening side: resolves with how much it gained and whether the other has more. */
  open(stream: ExchangeStream, peer: PeerId): Promise<{ gained: number; more: boolean }>;
  /** The answering side: resolves with how much it gained. */
  answer(stream: ExchangeStream, peer: PeerId): Promise<number>;
}

/** Options for {@link PeerExchange.start}. */
export interface PeerExchangeOptions {
  node: MeshNode;
  protocol: string;
  /** The largest message, in bytes. */
  maxMessageBytes: number;
  /** How long one whole exchange may take. */
  timeoutMs: number;
  sides: ExchangeSides;
  /** Told each exchange completed, by side (for a metric). */
  completed?(side: "opened" | "answered"): void;
  logger: Logger;
}

/** A catch-up protocol served and run with the node's peers. */
export class PeerExchange {
  readonly #o: PeerExchangeOptions;
  #spread?: ReturnType<typeof setTimeout>;
  #stopped = false;
  readonly #onConnect = (evt: CustomEvent<PeerId>) => void this.#exchangeWith(evt.detail);

  private constructor(options: PeerExchangeOptions) {
    this.#o = options;
  }

  /** Serves the protocol and exchanges with the peers already connected and every later one. */
  static async start(options: PeerExchangeOptions): Promise<PeerExchange> {
    const exchange = new PeerExchange(options);
    await options.node.handle(
      options.protocol,
      (stream, connection) => void exchange.#answer(stream, connection.remotePeer),
      { maxInboundStreams: 2 },
    );
    options.node.addEventListener("peer:connect", exchange.#onConnect);
    exchange.#spreadNow();
    return exchange;
  }

  /** Stops starting exchanges (the node's stop ends the open ones). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#spread);
    this.#o.node.removeEventListener("peer:connect", this.#onConnect);
  }

  #spreadSoon(): void {
    clearTimeout(this.#spread);
    this.#spread = setTimeout(() => this.#spreadNow(), SPREAD_DEBOUNCE_MS);
  }

  #spreadNow(): void {
    for (const peer of this.#o.node.getPeers()) void this.#exchangeWith(peer);
  }

  /** Opens exchanges with `peer` until it has nothing more to send (bounded). */
  async #exchangeWith(peer: PeerId): Promise<void> {
    const { node, protocol, timeoutMs, sides, logger } = this.#o;
    for (let round = 0; round < MAX_ROUNDS && !this.#stopped; round++) {
      const signal = AbortSignal.timeout(timeoutMs);
      let stream: Stream | undefined;
      try {
        stream = await node.dialProtocol(peer, protocol, { signal });
        const { gained, more } = await sides.open(
          new JsonMessages(stream, this.#o.maxMessageBytes, signal),
          peer,
        );
        await stream.close({ signal });
        this.#o.completed?.("opened");
        if (gained > 0) this.#spreadSoon();
        if (!more) return;
      } catch (err) {
        stream?.abort(err as Error);
        logger.debug("exchange with peer ended", { protocol, peer: peer.toString(), error: err });
        return;
      }
    }
  }

  /** The answering side of one exchange; a bad request is refused with what was wrong. */
  async #answer(stream: Stream, peer: PeerId): Promise<void> {
    const { protocol, timeoutMs, sides, logger } = this.#o;
    const signal = AbortSignal.timeout(timeoutMs);
    const messages = new JsonMessages(stream, this.#o.maxMessageBytes, signal);
    try {
      const gained = await sides.answer(messages, peer);
      await stream.close({ signal });
      this.#o.completed?.("answered");
      if (gained > 0) this.#spreadSoon();
    } catch (err) {
      await messages.refuse(err);
      logger.debug("exchange request failed", { protocol, peer: peer.toString(), error: err });
    }
  }
}
