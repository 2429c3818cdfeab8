/**
 * Fuzz family "wire": envelopes as a hostile libp2p peer would send them (random bytes, JSON of
 * any shape, envelopes with odd fields, validly signed envelopes whose payloads are mutated, bit
 * flips of a signed envelope, deep or huge payloads) through `openEnvelope` in process, where
 * most go. Then a sample of them through real agents by a hostile peer on every gossip topic and
 * on the direct protocols, once on an open mesh and once as a member holding the fleet key (a
 * peer without the key must not get in), plus a replayed directive. Every message sent must be
 * counted as accepted or dropped with a reason, and the agent must still answer.
 * @module
 */
import fc from "fast-check";
import { generateKeyPair } from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import type { PrivateKey } from "@libp2p/interface";
import { openEnvelope, sealEnvelope } from "../src/protocol/envelope.ts";
import { DIRECTIVES_SYNC_PROTOCOL } from "../src/mesh/directives_sync.ts";
import { STATUS_QUERY_PROTOCOL } from "../src/mesh/status_query.ts";
import { type AgentProcess, runLoam, startAgent } from "../tests/e2e/harness.ts";
import { eventually } from "../tests/e2e/mesh_helpers.ts";
import { startTestPeer, type TestPeer } from "../tests/fixtures/mesh_peer.ts";
import { testAdvert } from "../tests/fixtures/advert.ts";
import { testDirective } from "../tests/fixtures/directive.ts";
import {
  describe,
  draw,
  hostileValue,
  jsonText,
  mutatedBytes,
  mutatedJson,
  randomBytes,
} from "./fuzz_inputs.ts";
import { FamilyTally, judge, type Outcome } from "./fuzz_tally.ts";
import { sleep } from "../src/system/sleep.ts";

const MAX_MESSAGE_BYTES = 1024 * 1024;
/** Messages each real agent is sent over gossip (below its 200/s limit, at ~100/s). */
const GOSSIP_SAMPLE = 120;
/** Junk first messages on each direct protocol. */
const STREAM_SAMPLE = 10;

type Kind = "directive" | "status" | "advert" | "rollback";

/** A valid payload of each kind, to mutate. */
function validPayloads(issuer: string): Record<Kind, unknown> {
  const now = new Date().toISOString();
  return {
    directive: testDirective("fuzz-1", { type: "native_binary", arch: "x86_64", args: [] }, {
      issuer_node_id: issuer,
      options: { timeout_seconds: 5 },
    }),
    status: {
      directive_id: "fuzz-1",
      node_id: "n1",
      reported_at: now,
      state: "active",
      progress_percent: 100,
    },
    advert: testAdvert("n1", issuer),
    rollback: {
      rollback_id: "rb-1",
      directive_id: "fuzz-1",
      issued_at: now,
      issuer_node_id: issuer,
      reason: "x",
    },
  };
}

/** Signs `payload` (of any shape) as `kind` the way sealEnvelope does. */
async function signAny(kind: string, payload: unknown, key: PrivateKey, signer: string) {
  return await sealEnvelope(kind as Kind, payload as never, key, signer);
}

/** Draws the family's envelopes, all signed by `key` where they are signed at all. */
async function envelopes(count: number, seed: number, key: PrivateKey): Promise<Uint8Array[]> {
  const signer = peerIdFromPrivateKey(key).toString();
  const valid = validPayloads(signer);
  const kinds = Object.keys(valid) as Kind[];
  const text = (value: unknown) => new TextEncoder().encode(jsonText(value));
  const signedValid = await signAny("directive", valid.directive, key, signer);
  type Draft = { bytes: Uint8Array } | { sign: [string, unknown] };
  const arb: fc.Arbitrary<Draft> = fc.oneof(
    randomBytes().map((bytes) => ({ bytes })),
    hostileValue().map((v) => ({ bytes: text(v) })),
    fc.record({
      v: fc.oneof(fc.constant(1), hostileValue()),
      kind: fc.oneof(fc.constantFrom(...kinds, "exec", ""), hostileValue()),
      payload: fc.oneof(fc.constant(jsonText(valid.status)), hostileValue()),
      signer: fc.oneof(fc.constant(signer), fc.string(), hostileValue()),
      sig: fc.oneof(fc.base64String({ maxLength: 100 }), hostileValue()),
    }, { requiredKeys: [] }).map((e) => ({ bytes: text(e) })),
    {
      arbitrary: fc.constantFrom(...kinds).chain((kind) =>
        mutatedJson(valid[kind]).map((p) => ({ sign: [kind, p] as [string, unknown] }))
      ),
      weight: 4,
    },
    fc.tuple(fc.constantFrom(...kinds, "exec"), hostileValue()).map(([k, p]) => ({
      sign: [k, p] as [string, unknown],
    })),
    mutatedBytes(signedValid).map((bytes) => ({ bytes })),
  );
  const out: Uint8Array[] = [];
  for (const draft of draw(arb, count, seed)) {
    out.push(
      "bytes" in draft ? draft.bytes : await signAny(draft.sign[0], draft.sign[1], key, signer),
    );
  }
  return out;
}

/** Opens one envelope as the gossip validator does; a drop is a rejection with its reason. */
function openOne(bytes: Uint8Array): Promise<Outcome> {
  return judge(async () => {
    const opened = await openEnvelope(bytes, MAX_MESSAGE_BYTES);
    if (!opened.ok) throw new Error(`${opened.reason}: ${opened.detail}`);
  });
}

/** The agent's gossip counters: accepted by kind and dropped by reason, as `label → count`. */
async function gossipCounts(agent: AgentProcess): Promise<Map<string, number>> {
  const text = await (await agent.request("/metrics", { token: agent.adminToken() })).text();
  const counts = new Map<string, number>();
  for (const line of text.split("\n")) {
    const hit = line.match(/^loam_mesh_messages_(accepted|dropped)_total\{\w+="([^"]+)"\} (\d+)/);
    if (hit) counts.set(`${hit[1]} ${hit[2]}`, Number(hit[3]));
  }
  return counts;
}

const total = (counts: Map<string, number>) => [...counts.values()].reduce((a, b) => a + b, 0);

/** Sends `sample` over gossip and junk on the direct protocols from `peer` to `agent`. */
async function throughAgent(
  tally: FamilyTally,
  agent: AgentProcess,
  peer: TestPeer,
  sample: Uint8Array[],
  seed: number,
): Promise<void> {
  const before = await gossipCounts(agent);
  const topics = [peer.topics.directives, peer.topics.status, peer.topics.adverts];
  for (const [i, bytes] of sample.entries()) {
    await peer.publish(topics[i % topics.length]!, bytes).catch(() => {});
    await sleep(10);
  }
  const after = await eventually("every gossip message counted", async () => {
    const now = await gossipCounts(agent);
    return total(now) - total(before) >= sample.length ? now : undefined;
  }, 15_000).catch(() => gossipCounts(agent));
  let left = sample.length;
  for (const [label, value] of after) {
    for (let n = value - (before.get(label) ?? 0); n > 0 && left > 0; n--, left--) {
      tally.record(
        label.startsWith("dropped")
          ? { kind: "rejected", reason: `gossip ${label}` }
          : { kind: "accepted" },
        () => label,
      );
    }
  }
  // sent but never counted: lost without a reason the operator could see
  for (; left > 0; left--) tally.record({ kind: "rejected", reason: "" }, () => "uncounted");
  for (const protocol of [DIRECTIVES_SYNC_PROTOCOL, STATUS_QUERY_PROTOCOL]) {
    for (const junk of draw(hostileValue(), STREAM_SAMPLE, seed)) {
      const outcome: Outcome = await peer.converse(protocol, [{ send: junk }, { receive: true }])
        .then((): Outcome => ({ kind: "accepted" }))
        .catch((err) => ({ kind: "rejected", reason: `stream ended: ${(err as Error).message}` }));
      tally.record(outcome, () => `${protocol} ${describe(junk)}`);
    }
  }
  const live = await agent.request("/livez").then((r) => r.status).catch(() => 0);
  tally.record(
    live === 200 ? { kind: "rejected", reason: "agent still answers" } : {
      kind: "crash",
      what: `agent no longer answers (/livez ${live})`,
    },
    () => "the whole sample",
  );
}

/** The same directive twice: the second copy must be refused as a replay. */
async function replay(tally: FamilyTally, agent: AgentProcess, peer: TestPeer, key: PrivateKey) {
  const directive = validPayloads(peer.peerId).directive as { directive_id: string };
  directive.directive_id = "fuzz-replay";
  await peer.publish(
    peer.topics.directives,
    await signAny("directive", directive, key, peer.peerId),
  );
  await sleep(300);
  await peer.publish(
    peer.topics.directives,
    await signAny(
      "directive",
      { ...directive, issued_at: new Date().toISOString() },
      key,
      peer.peerId,
    ),
  );
  const line = await eventually(
    "the replay refused",
    () => Promise.resolve(agent.lines.find((l) => l.includes('"reason":"replay"'))),
    10_000,
  ).catch(() => undefined);
  tally.record(
    line ? { kind: "rejected", reason: "directive fuzz-replay was already seen" } : {
      kind: "rejected",
      reason: "",
    },
    () => "a replayed directive",
  );
}

/** Runs the family; returns its tallies. */
export async function fuzzWire(dir: string, count: number, seed: number): Promise<FamilyTally[]> {
  const key = await generateKeyPair("Ed25519");
  const issuer = peerIdFromPrivateKey(key).toString();
  const tally = new FamilyTally("wire messages (openEnvelope)");
  const all = await envelopes(count, seed, key);
  const refused: Uint8Array[] = [];
  const distinct = new Set<string>();
  for (const bytes of all) {
    const outcome = await openOne(bytes);
    tally.record(outcome, () => describe(bytes));
    const id = describe(bytes);
    if (outcome.kind === "rejected" && bytes.length < 64 * 1024 && !distinct.has(id)) {
      distinct.add(id);
      refused.push(bytes);
    }
  }
  const sample = refused.slice(0, GOSSIP_SAMPLE);
  const tallies = [tally];
  const fleetKeyPath = `${dir}/fleet.key`;
  const made = await runLoam(["keys", "fleet", "--out", fleetKeyPath]);
  if (made.code !== 0) throw new Error(`loam keys fleet failed: ${made.stderr}`);
  const fleetKey = await Deno.readFile(fleetKeyPath);
  for (const keyed of [false, true]) {
    const agentTally = new FamilyTally(
      `wire: hostile peer, ${keyed ? "fleet member with the key" : "open mesh"}`,
    );
    tallies.push(agentTally);
    const agent = await startAgent(`${dir}/agent-${keyed ? "keyed" : "open"}`, [
      ...["--set", `mesh.trusted_issuers=${issuer}`, "--set", "fetch.retries=0"],
      ...(keyed ? ["--fleet-key", fleetKeyPath] : []),
    ]);
    try {
      const peer = await startTestPeer({
        dial: agent.meshAddrs[0]!,
        privateKey: key,
        ...(keyed ? { fleetKey } : {}),
      });
      try {
        // first: after a burst of junk, gossipsub's peer score ignores this peer altogether
        await replay(agentTally, agent, peer, key);
        await throughAgent(agentTally, agent, peer, sample, seed);
      } finally {
        await peer.close();
      }
      if (keyed) {
        const stranger = await startTestPeer({ dial: agent.meshAddrs[0]! }).then(
          async (p): Promise<Outcome> => {
            await p.close();
            return { kind: "crash", what: "a peer without the fleet key got in" };
          },
          (err): Outcome => ({
            kind: "rejected",
            reason: `no key, no way in: ${(err as Error).message}`,
          }),
        );
        agentTally.record(stranger, () => "a peer without the fleet key");
      }
    } finally {
      await agent.stop();
    }
  }
  return tallies;
}
