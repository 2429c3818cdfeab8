import { TopicValidatorResult } from "@libp2p/gossipsub";
import type { PrivateKey } from "@libp2p/interface";
import { Counter, type Registry } from "prom-client";
import type { MeshNode } from "./node.ts";
import { type MeshTopics, meshTopics } from "./topics.ts";
import {
  type DropReason,
  type GossipKind,
  type MessageKind,
  type OpenedMessage,
  openEnvelope,
  type PayloadOf,
  sealEnvelope,
} from "../protocol/envelope.ts";
import type { Logger } from "../system/logger.ts";
import { mayPublish } from "../protocol/registry_entry.ts";
import { GossipRateLimit } from "./gossip_rate.ts";

/** Reasons beyond the envelope's own: who may send what, on which topic. */
type PolicyDropReason =
  | "wrong_topic"
  | "signer_mismatch"
  | "untrusted_issuer"
  | "unsigned"
  | "rate_limited";

/**
 * Receives accepted messages of one kind: the payload, its signer, and the envelope's text as
 * received (signature included), for what is kept and handed on.
 */
export type MessageHandler<K extends MessageKind> = (
  payload: PayloadOf[K],
  signer: string,
  envelope: string,
) => void;

/** Options for {@link MeshMessaging}. */
export interface MessagingOptions {
  node: MeshNode;
  network: string;
  trustedIssuers: string[];
  maxMessageBytes: number;
  privateKey: PrivateKey;
  registry: Registry;
  logger: Logger;
  /** `mesh.limits.gossip_per_second` for each forwarding peer; 0 or absent = no limit. */
  gossipPerSecond?: number;
}

/**
 * Signed gossip on the network's three topics. Every incoming message is checked inside
 * gossipsub's validator (size, signature, schema, sender rules) so that invalid ones are
 * rejected and never forwarded; accepted ones go to the handlers, dropped ones are counted.
 */
export class MeshMessaging {
  readonly topics: MeshTopics;
  readonly #options: MessagingOptions;
  readonly #handlers: { [K in GossipKind]: MessageHandler<K>[] } = {
    directive: [],
    status: [],
    advert: [],
    rollback: [],
    registry_entry: [],
  };
  readonly #received: Counter<"kind">;
  readonly #dropped: Counter<"reason">;
  readonly #rate: GossipRateLimit;

  constructor(options: MessagingOptions) {
    this.#options = options;
    this.#rate = new GossipRateLimit(options.gossipPerSecond ?? 0);
    this.topics = meshTopics(options.network);
    this.#received = new Counter({
      name: "loam_mesh_messages_accepted_total",
      help: "Gossip messages accepted, by kind.",
      labelNames: ["kind"],
      registers: [options.registry],
    });
    this.#dropped = new Counter({
      name: "loam_mesh_messages_dropped_total",
      help: "Gossip messages rejected (not forwarded), by reason.",
      labelNames: ["reason"],
      registers: [options.registry],
    });
    const pubsub = options.node.services.pubsub;
    const kinds: [string, MessageKind[]][] = [
      [this.topics.directives, ["directive", "rollback"]],
      [this.topics.status, ["status"]],
      [this.topics.adverts, ["advert"]],
      [this.topics.registry, ["registry_entry"]],
    ];
    for (const [topic, allowed] of kinds) {
      pubsub.topicValidators.set(topic, (from, msg) => {
        // before decoding or a signature check: a flood costs a counter increment
        if (!this.#rate.take(from.toString())) {
          this.#dropped.inc({ reason: "rate_limited" });
          return TopicValidatorResult.Ignore;
        }
        return this.#validate(allowed, msg);
      });
      pubsub.subscribe(topic);
    }
  }

  /** Registers a handler for accepted messages of `kind`. */
  on<K extends GossipKind>(kind: K, handler: MessageHandler<K>): void {
    (this.#handlers[kind] as MessageHandler<K>[]).push(handler);
  }

  /** Signs and publishes a message on its kind's topic; returns how many peers it was sent to. */
  async publish<K extends GossipKind>(kind: K, payload: PayloadOf[K]): Promise<number> {
    return await this.send(kind, await this.seal(kind, payload));
  }

  /** Signs a message with this node's key, for {@link send} (and for keeping what was sent). */
  seal<K extends MessageKind>(kind: K, payload: PayloadOf[K]): Promise<Uint8Array> {
    const { node, privateKey } = this.#options;
    return sealEnvelope(kind, payload, privateKey, node.peerId.toString());
  }

  /** Publishes a sealed envelope of `kind` on its topic; returns how many peers it was sent to. */
  async send(kind: GossipKind, data: Uint8Array): Promise<number> {
    const { node } = this.#options;
    const topic = kind === "directive" || kind === "rollback"
      ? this.topics.directives
      : kind === "status"
      ? this.topics.status
      : kind === "registry_entry"
      ? this.topics.registry
      : this.topics.adverts;
    return (await node.services.pubsub.publish(topic, data)).recipients.length;
  }

  #reject(reason: DropReason | PolicyDropReason, detail: string): TopicValidatorResult {
    this.#dropped.inc({ reason });
    this.#options.logger.debug("gossip message dropped", { reason, detail });
    return TopicValidatorResult.Reject;
  }

  async #validate(
    topicKinds: MessageKind[],
    msg: { type: "signed" | "unsigned"; data: Uint8Array; from?: { toString(): string } },
  ): Promise<TopicValidatorResult> {
    if (msg.type !== "signed" || !msg.from) {
      return this.#reject("unsigned", "gossip message has no origin");
    }
    const opened = await openEnvelope(msg.data, this.#options.maxMessageBytes);
    if (!opened.ok) return this.#reject(opened.reason, opened.detail);
    const message = opened.message;
    if (!topicKinds.includes(message.kind)) {
      return this.#reject("wrong_topic", `${message.kind} on the ${topicKinds[0]} topic`);
    }
    const origin = msg.from.toString();
    if (message.signer !== origin) {
      return this.#reject("signer_mismatch", `signed by ${message.signer}, sent by ${origin}`);
    }
    const fromCommandPost = message.kind === "directive" || message.kind === "rollback";
    if (fromCommandPost && !this.#options.trustedIssuers.includes(message.signer)) {
      return this.#reject("untrusted_issuer", `${message.kind} from ${message.signer}`);
    }
    // an entry is its owner's to publish; a tombstone of another's, a trusted issuer's
    if (
      message.kind === "registry_entry" &&
      !mayPublish(message.payload, message.signer, this.#options.trustedIssuers)
    ) {
      return this.#reject(
        "signer_mismatch",
        `registry entry of ${message.payload.owner_id} signed by ${message.signer}`,
      );
    }
    if (message.kind === "advert" && message.payload.peer_id !== message.signer) {
      return this.#reject(
        "signer_mismatch",
        `advert for ${message.payload.peer_id} signed by ${message.signer}`,
      );
    }
    this.#received.inc({ kind: message.kind });
    const envelope = new TextDecoder().decode(msg.data);
    queueMicrotask(() => this.#dispatch(message, envelope));
    return TopicValidatorResult.Accept;
  }

  #dispatch(message: OpenedMessage, envelope: string): void {
    const kind = message.kind as GossipKind; // the topic check let only gossip kinds through
    for (const handler of this.#handlers[kind] as MessageHandler<typeof kind>[]) {
      try {
        handler(message.payload as never, message.signer, envelope);
      } catch (err) {
        this.#options.logger.error("gossip handler failed", { kind: message.kind, error: err });
      }
    }
  }
}
