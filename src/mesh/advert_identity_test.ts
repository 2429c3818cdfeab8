import assert from "node:assert/strict";
import { generateKeyPair } from "@libp2p/crypto/keys";
import type { PrivateKey } from "@libp2p/interface";
import { Registry } from "prom-client";
import { createMeshNode, type MeshNode } from "./node.ts";
import { MeshMessaging } from "./messaging.ts";
import { AdvertIdentity } from "./advert_identity.ts";
import { IdentityProblems } from "./identity_problems.ts";
import type { Advert } from "../protocol/advert.ts";
import { createLogger } from "../system/logger.ts";
import { eventually } from "../../tests/e2e/mesh_helpers.ts";
import { testAdvert } from "../../tests/fixtures/advert.ts";
import { sleep } from "../system/sleep.ts";

const NETWORK = "advert-identity-test";

function advert(nodeId: string, peerId: string, sentAt = new Date()): Advert {
  return testAdvert(nodeId, peerId, { sent_at: sentAt.toISOString() });
}

/** A logger that keeps its JSON lines. */
function recording(): { lines: { level: string; msg: string }[]; problems: IdentityProblems } {
  const lines: { level: string; msg: string }[] = [];
  const logger = createLogger({
    level: "info",
    format: "json",
    write: (line) => lines.push(JSON.parse(line)),
  });
  return { lines, problems: new IdentityProblems(logger) };
}

async function node(privateKey: PrivateKey): Promise<MeshNode> {
  return await createMeshNode({
    privateKey,
    listen: "/ip4/127.0.0.1/tcp/0",
    bootstrap: [],
    network: NETWORK,
    mdns: false,
    maxMessageBytes: 1024 * 1024,
  });
}

function messaging(n: MeshNode, privateKey: PrivateKey): MeshMessaging {
  return new MeshMessaging({
    node: n,
    network: NETWORK,
    trustedIssuers: [],
    maxMessageBytes: 1024 * 1024,
    privateKey,
    registry: new Registry(),
    logger: createLogger({ level: "error", format: "json", write: () => {} }),
  });
}

Deno.test({
  name: "an advert signed with this node's key, sent by another process, arrives and is a clash",
  // libp2p leaves timers running after stop()
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const key = await generateKeyPair("Ed25519");
    const [k1, k2] = [await generateKeyPair("Ed25519"), await generateKeyPair("Ed25519")];
    const [original, copy, relay1, relay2] = [
      await node(key),
      await node(key),
      await node(k1),
      await node(k2),
    ];
    const nodes = [original, copy, relay1, relay2];
    try {
      const shared = original.peerId.toString();
      const { lines, problems } = recording();
      const check = new AdvertIdentity(shared, problems);
      const heard = messaging(original, key);
      heard.on("advert", (a, signer) => void check.received(a, signer));
      const sender = messaging(copy, key);
      messaging(relay1, k1);
      messaging(relay2, k2);
      // copy - relay1 - relay2 - original: a relay never forwards to the peer id a message came
      // from, so the copy's gossip reaches the original only through a second relay
      await copy.dial(relay1.getMultiaddrs()[0]!);
      await relay1.dial(relay2.getMultiaddrs()[0]!);
      await relay2.dial(original.getMultiaddrs()[0]!);
      const own = advert("jetson", shared);
      check.sent(own);
      const found = await eventually("the copy's advert reaches the original", async () => {
        await heard.publish("advert", advert("jetson", shared));
        await sender.publish("advert", advert("jetson-copy", shared));
        await sleep(300);
        return problems.list()[0];
      });
      assert.equal(found.kind, "peer_id_clash");
      assert.equal(found.detected_by, "gossip");
      assert.equal(found.node_id, "jetson-copy", "the original's own adverts never come back");
      assert.equal(problems.list().length, 1);
      assert.deepEqual(lines.filter((l) => l.msg === found.message).map((l) => l.level), [
        "error",
      ]);
    } finally {
      await Promise.all(nodes.map((n) => n.stop()));
    }
  },
});

Deno.test("a node id clash is reported until the other peer advertises another node id", () => {
  const { lines, problems } = recording();
  const check = new AdvertIdentity("12D3KooWme", problems, Date.now() - 60_000);
  check.sent(advert("twin", "12D3KooWme"));
  assert.equal(check.received(advert("other", "12D3KooWb"), "12D3KooWb"), true);
  assert.deepEqual(problems.list(), []);
  assert.equal(check.received(advert("twin", "12D3KooWb"), "12D3KooWb"), true);
  assert.equal(check.received(advert("twin", "12D3KooWb"), "12D3KooWb"), true);
  const [clash] = problems.list();
  assert.equal(problems.list().length, 1);
  assert.equal(clash?.kind, "node_id_clash");
  assert.equal(clash?.peer_id, "12D3KooWb");
  assert.deepEqual(lines.filter((l) => l.msg === clash?.message).map((l) => l.level), ["warn"]);
  check.received(advert("renamed", "12D3KooWb"), "12D3KooWb");
  assert.deepEqual(problems.list(), []);
});

Deno.test("right after a start, a copy of this node's advert from before it is no clash", () => {
  const { problems } = recording();
  const started = Date.now();
  const check = new AdvertIdentity("12D3KooWme", problems, started);
  const before = advert("jetson", "12D3KooWme", new Date(started - 5_000));
  assert.equal(check.received(before, "12D3KooWme"), false, "not another node's advert");
  assert.deepEqual(problems.list(), []);
  assert.equal(check.received(advert("jetson", "12D3KooWme"), "12D3KooWme"), false);
  assert.equal(problems.list()[0]?.kind, "peer_id_clash");
});
