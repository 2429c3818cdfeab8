import assert from "node:assert/strict";
import { generateKeyPair } from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { openEnvelope, sealEnvelope } from "./envelope.ts";
import type { DeploymentStatus } from "./status.ts";

const status: DeploymentStatus = {
  directive_id: "d1",
  node_id: "n1",
  reported_at: "2026-11-23T10:00:00.000Z",
  state: "downloading",
  progress_percent: 40,
};

async function keys() {
  const key = await generateKeyPair("Ed25519");
  return { key, peer: peerIdFromPrivateKey(key).toString() };
}

/** `n` arrays nested in each other. */
const deep = (n: number): unknown => JSON.parse("[".repeat(n) + "]".repeat(n));
const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

Deno.test("a sealed envelope opens to the same payload and names its signer", async () => {
  const { key, peer } = await keys();
  const opened = await openEnvelope(await sealEnvelope("status", status, key, peer), 1 << 20);
  assert.ok(opened.ok);
  assert.deepEqual(opened.message, { kind: "status", signer: peer, payload: status });
});

Deno.test("openEnvelope names why a message is dropped, cheapest check first", async () => {
  const { key, peer } = await keys();
  const other = await keys();
  const sealed = JSON.parse(
    new TextDecoder().decode(await sealEnvelope("status", status, key, peer)),
  );
  const cases: [Uint8Array, string][] = [
    [new Uint8Array(3000), "oversized"],
    [new TextEncoder().encode("{nope"), "not_json"],
    [json({ ...sealed, extra: 1 }), "bad_envelope"],
    [json({ ...sealed, v: 2 }), "unknown_version"],
    [json({ ...sealed, kind: "gossip" }), "unknown_kind"],
    [json({ ...sealed, signer: "not-a-peer" }), "bad_signer"],
    [json({ ...sealed, signer: other.peer }), "bad_signature"],
    [json({ ...sealed, payload: sealed.payload.replace("40", "41") }), "bad_signature"],
    [json({ ...sealed, sig: "!!" }), "bad_signature"],
    [await sealEnvelope("status", { ...status, state: "exploded" } as never, key, peer), "schema"],
    [new TextEncoder().encode("[".repeat(500) + "]".repeat(500)), "too_deep"],
    [await sealEnvelope("status", { ...status, extra: deep(300) } as never, key, peer), "too_deep"],
  ];
  for (const [data, reason] of cases) {
    const opened = await openEnvelope(data, 2048);
    assert.equal(opened.ok ? "accepted" : opened.reason, reason);
  }
});
