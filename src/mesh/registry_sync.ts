import { Counter, type Registry } from "prom-client";
import type { MeshNode } from "./node.ts";
import { type ExchangeStream, PeerExchange } from "./peer_exchange.ts";
import {
  MAX_SYNC_DOCUMENTS,
  type RegistryDigest,
  RegistrySyncAnswerSchema,
  RegistrySyncPushSchema,
  RegistrySyncRequestSchema,
} from "../protocol/registry_sync.ts";
import type { Logger } from "../system/logger.ts";

/** The registry catch-up protocol (see src/protocol/registry_sync.ts for its messages). */
export const REGISTRY_SYNC_PROTOCOL = "/loam/registry-sync/1";

/** How long one whole exchange may take. */
const EXCHANGE_TIMEOUT_MS = 20_000;
/** Document text per message, at least; one larger document still travels alone. */
const BATCH_BYTES = 8 * 1024 * 1024;

/** What the sync reads from and hands to the registry. */
export interface RegistryLedger {
  /** `[kind/id, hash]` of every document held. */
  digest(): RegistryDigest;
  /** Documents a holder of `theirs` lacks or holds in another version, within the limits. */
  documentsFor(
    theirs: RegistryDigest,
    limits: { maxCount: number; maxBytes: number },
    only?: ReadonlySet<string>,
  ): { documents: string[]; more: boolean };
  /** The keys in `theirs` held here in no version or in another one. */
  wanted(theirs: RegistryDigest): string[];
  /** Verifies and merges documents; resolves with how many changed what this node holds. */
  mergeAll(documents: Uint8Array[]): Promise<number>;
}

/** Options for {@link RegistrySync.start}. */
export interface RegistrySyncOptions {
  node: MeshNode;
  ledger: RegistryLedger;
  registry: Registry;
  logger: Logger;
}

/**
 * Brings the registries of two nodes together over a direct stream (see {@link PeerExchange}
 * for when): only what differs travels, and every document is verified by the registry.
 */
export class RegistrySync {
  readonly #exchange: PeerExchange;

  private constructor(exchange: PeerExchange) {
    this.#exchange = exchange;
  }

  /** Serves the protocol and exchanges with the peers already connected and every later one. */
  static async start(options: RegistrySyncOptions): Promise<RegistrySync> {
    const { ledger } = options;
    const documents = new Counter({
      name: "loam_registry_sync_documents_total",
      help: `Registry documents exchanged over ${REGISTRY_SYNC_PROTOCOL}: sent, or received ` +
        "and taken (changed what this node holds).",
      labelNames: ["outcome"],
      registers: [options.registry],
    });
    const limits = { maxCount: MAX_SYNC_DOCUMENTS, maxBytes: BATCH_BYTES };
    const sent = (list: string[]) => {
      documents.inc({ outcome: "sent" }, list.length);
      return list;
    };
    const take = async (list: string[]) => {
      if (list.length === 0) return 0;
      const gained = await ledger.mergeAll(list.map((text) => new TextEncoder().encode(text)));
      documents.inc({ outcome: "taken" }, gained);
      return gained;
    };
    const exchange = await PeerExchange.start({
      node: options.node,
      protocol: REGISTRY_SYNC_PROTOCOL,
      maxMessageBytes: 2 * BATCH_BYTES + 4 * 1024 * 1024,
      timeoutMs: EXCHANGE_TIMEOUT_MS,
      logger: options.logger,
      sides: {
        async open(stream: ExchangeStream) {
          await stream.send({ digest: ledger.digest() });
          const answer = await stream.receive(RegistrySyncAnswerSchema);
          const gained = await take(answer.documents);
          const push = ledger.documentsFor([], limits, new Set(answer.want));
          await stream.send({ documents: sent(push.documents) });
          return { gained, more: answer.more };
        },
        async answer(stream: ExchangeStream) {
          const { digest } = await stream.receive(RegistrySyncRequestSchema);
          const { documents: list, more } = ledger.documentsFor(digest, limits);
          await stream.send({ documents: sent(list), more, want: ledger.wanted(digest) });
          return await take((await stream.receive(RegistrySyncPushSchema)).documents);
        },
      },
    });
    return new RegistrySync(exchange);
  }

  /** Stops starting exchanges (the node's stop ends the open ones). */
  stop(): void {
    this.#exchange.stop();
  }
}
