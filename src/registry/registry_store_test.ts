import assert from "node:assert/strict";
import { join } from "node:path";
import { generateKeyPair } from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import type { PrivateKey } from "@libp2p/interface";
import { type RegistryOptions, RegistryStore } from "./registry_store.ts";
import { sealEnvelope } from "../protocol/envelope.ts";
import type { RegistryDocument } from "../protocol/registry_entry.ts";
import type { HttpError } from "../system/http_error.ts";
import { tempDir } from "../../tests/e2e/harness.ts";

interface Node {
  key: PrivateKey;
  peer: string;
}

async function node(): Promise<Node> {
  const key = await generateKeyPair("Ed25519");
  return { key, peer: peerIdFromPrivateKey(key).toString() };
}

async function open(dir: string, who: Node, extra: Partial<RegistryOptions> = {}) {
  const rejected: string[] = [];
  const store = await RegistryStore.open({
    path: join(dir, `${who.peer}.json`),
    self: who.peer,
    privateKey: who.key,
    maxEntriesPerOwner: 1000,
    maxDocumentBytes: 65_536,
    moderators: [],
    onRejected: (reason) => rejected.push(reason),
    ...extra,
  });
  return { store, rejected };
}

const model = (id: string, version = "1.0.0") => ({ model_id: id, name: id, version });

/** A document as `signer` signs it (any content: forgeries included). */
async function signed(doc: RegistryDocument, signer: Node): Promise<Uint8Array> {
  return await sealEnvelope("registry_entry", doc, signer.key, signer.peer);
}

function doc(owner: string, id: string, revision: number, deleted = false): RegistryDocument {
  const at = "2026-12-07T10:00:00.000Z";
  return {
    kind: "model",
    id,
    owner_id: owner,
    revision,
    created_at: at,
    updated_at: at,
    deleted,
    ...(deleted ? {} : { entry: { ...model(id), version: `1.0.${revision}` } as never }),
  };
}

Deno.test("registry: publish, update with a higher revision, delete by tombstone; reloaded verified", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  {
    const a = await node();
    const { store } = await open(dir, a);
    const first = await store.publish("model", model("llama"));
    assert.equal(first.owner_id, a.peer);
    assert.equal(first.revision, 1);
    await assert.rejects(
      store.publish("model", model("llama")),
      (e: HttpError) => e.status === 409,
    );
    const second = await store.publish("model", model("llama", "1.1.0"), "llama");
    assert.equal(second.revision, 2);
    assert.equal(second.created_at, first.created_at);
    await assert.rejects(
      store.publish("model", model("other"), "llama"),
      (e: HttpError) => e.status === 400 && /not the path's id/.test(e.message),
    );
    await assert.rejects(
      store.publish("model", { model_id: "x", name: "x", version: "one" }),
      (e: HttpError) => e.status === 400 && /version/.test(e.message),
    );
    await store.publish("agent", { agent_id: "helper", name: "Helper", version: "0.1.0" });
    await store.publish("model", model("gone"));
    await store.remove("model", "gone");
    assert.deepEqual(store.list("model").map((e) => e.model_id), ["llama"]);
    assert.equal(store.get("model", "gone"), undefined);
    await assert.rejects(store.remove("model", "gone"), (e: HttpError) => e.status === 404);

    const again = (await open(dir, a)).store;
    assert.deepEqual(again.list("model").map((e) => [e.model_id, e.version]), [["llama", "1.1.0"]]);
    assert.deepEqual(again.list("agent").map((e) => e.agent_id), ["helper"]);
    assert.equal(again.envelopes().length, 3, "the tombstone is kept");
  }
});

Deno.test("registry: another owner's documents merge; forgeries, stale and tampered ones do not", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  {
    const [a, b, mallory] = [await node(), await node(), await node()];
    const { store, rejected } = await open(dir, a);
    assert.equal(await store.merge(await signed(doc(b.peer, "m1", 1), b)), "added");
    assert.equal(await store.merge(await signed(doc(b.peer, "m1", 3), b)), "updated");
    assert.equal(await store.merge(await signed(doc(b.peer, "m1", 2), b)), "unchanged");
    assert.equal(store.get("model", "m1")!.version, "1.0.3");
    // signed by someone other than the owner it names
    assert.deepEqual(await store.merge(await signed(doc(b.peer, "m1", 9), mallory)), {
      rejected: "not_owner",
    });
    const tampered = new TextDecoder().decode(await signed(doc(b.peer, "m1", 4), b))
      .replace("1.0.4", "6.6.6");
    assert.deepEqual(await store.merge(new TextEncoder().encode(tampered)), {
      rejected: "invalid",
    });
    assert.deepEqual(rejected, ["not_owner", "invalid"]);
    // this node may not change or delete what b owns
    await assert.rejects(
      store.publish("model", model("m1", "2.0.0"), "m1"),
      (e: HttpError) => e.status === 403 && e.message.includes(b.peer),
    );
    await assert.rejects(store.remove("model", "m1"), (e: HttpError) => e.status === 403);
    assert.equal(store.get("model", "m1")!.version, "1.0.3");
  }
});

Deno.test("registry: an owner's update racing a moderator's tombstone ends the same on every node", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  {
    const [owner, moderator, x, y] = [await node(), await node(), await node(), await node()];
    const update = await signed(doc(owner.peer, "m", 2), owner);
    const tombstone = await signed(doc(owner.peer, "m", 1, true), moderator);
    const first = (await open(dir, x, { moderators: [moderator.peer] })).store;
    const second = (await open(dir, y, { moderators: [moderator.peer] })).store;
    await first.merge(await signed(doc(owner.peer, "m", 1), owner));
    await first.merge(update);
    await first.merge(tombstone);
    await second.merge(tombstone);
    await second.merge(update);
    assert.equal(first.get("model", "m"), undefined);
    assert.equal(second.get("model", "m"), undefined);
    assert.deepEqual(first.envelopes(), second.envelopes());
    // and the owner cannot bring it back with a later revision
    assert.equal(await first.merge(await signed(doc(owner.peer, "m", 7), owner)), "unchanged");
    // a tombstone from someone who is not a moderator is a forgery
    const other = (await open(dir, x)).store;
    assert.deepEqual(await other.merge(tombstone), { rejected: "not_owner" });
  }
});

Deno.test("registry: a moderator node deletes another owner's entry from its API", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  {
    const [owner, moderator] = [await node(), await node()];
    const { store } = await open(dir, moderator, { moderators: [moderator.peer] });
    await store.merge(await signed(doc(owner.peer, "spam", 1), owner));
    await store.remove("model", "spam");
    assert.equal(store.get("model", "spam"), undefined);
  }
});

Deno.test("registry: per-owner and per-document limits; a file that is not the registry's is an error", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  {
    const [a, b] = [await node(), await node()];
    const { store, rejected } = await open(dir, a, {
      maxEntriesPerOwner: 2,
      maxDocumentBytes: 4096,
    });
    await store.publish("model", model("one"));
    await store.publish("model", model("two"));
    await assert.rejects(
      store.publish("model", model("three")),
      (e: HttpError) => e.status === 409 && /max_entries_per_owner/.test(e.message),
    );
    for (const id of ["b1", "b2"]) await store.merge(await signed(doc(b.peer, id, 1), b));
    assert.deepEqual(await store.merge(await signed(doc(b.peer, "b3", 1), b)), {
      rejected: "owner_limit",
    });
    const big = { ...model("big"), description: "x".repeat(4000) };
    await assert.rejects(store.publish("model", big), (e: HttpError) => e.status === 413);
    assert.ok(rejected.includes("owner_limit"));

    const path = join(dir, "broken.json");
    await Deno.writeTextFile(path, "{ not json");
    await assert.rejects(
      RegistryStore.open({
        path,
        self: a.peer,
        privateKey: a.key,
        maxEntriesPerOwner: 10,
        maxDocumentBytes: 65_536,
        moderators: [],
      }),
      /registry file .* is unreadable/,
    );
  }
});
