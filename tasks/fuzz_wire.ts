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
import { REGISTRY_SYNC_PROTOCOL } from "../src/mesh/registry_sync.ts";
import {
  decodeFrame,
  encodeFrame,
  type FrameKind,
  INFER_PROTOCOL,
  jsonOfFrame,
} from "../src/mesh/infer_protocol.ts";
import { createSha256 } from "../src/blobs/digest.ts";
import { type AgentProcess, runLoam, startAgent } from "../tests/e2e/harness.ts";
import { eventually } from "../tests/e2e/mesh_helpers.ts";
import { startTestPeer, type TestPeer } from "../tests/fixtures/mesh_peer.ts";
import { testAdvert } from "../tests/fixtures/advert.ts";
import { testDirective } from "../tests/fixtures/directive.ts";
import { sha256Hex, startBlobServer } from "../tests/fixtures/blob_server.ts";
import { tinyOnnxModel } from "../tests/fixtures/tiny_onnx.ts";
import { postArtifact, settledDeployment } from "../tests/e2e/deploy_helpers.ts";
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

type Kind =
  | "directive"
  | "status"
  | "advert"
  | "rollback"
  | "registry_entry"
  | "infer_offer"
  | "infer_receipt";

/** Tags of junk first frames on `/loam/infer/1`: offer, body, failure, and two it lacks. */
const INFER_TAGS = [1, 3, 7, 0, 255];

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
    registry_entry: {
      kind: "model",
      id: "fuzz-model",
      owner_id: issuer,
      revision: 1,
      created_at: now,
      updated_at: now,
      entry: { model_id: "fuzz-model", name: "Fuzz", version: "1.0.0", tags: ["edge"] },
    },
    infer_offer: validOffer(issuer),
    infer_receipt: {
      job_id: crypto.randomUUID(),
      model: "fuzz-model",
      blob_hash: `sha256:${"1".repeat(64)}`,
      executor: issuer,
      requester: issuer,
      status: 200,
      tokens_in: 1,
      tokens_out: 1,
      bytes_in: 2,
      bytes_out: 2,
      started_at: now,
      finished_at: now,
    },
  };
}

/** A well-formed job offer from `requester` for a model no fuzzed agent holds. */
function validOffer(requester: string) {
  return {
    job_id: crypto.randomUUID(),
    model: "fuzz-model",
    blob_hash: `sha256:${"1".repeat(64)}`,
    path: "/v1/chat/completions",
    content_type: "application/json",
    accept: "application/json",
    body_bytes: 2,
    body_sha256: createSha256().update(new TextEncoder().encode("{}")).digest("hex"),
    requester,
    client: "fuzz",
    deadline: new Date(Date.now() + 60_000).toISOString(),
  };
}

/** `value` as the bytes of its JSON text. */
const text = (value: unknown) => new TextEncoder().encode(jsonText(value));

/** Signs `payload` (of any shape) as `kind` the way sealEnvelope does. */
async function signAny(kind: string, payload: unknown, key: PrivateKey, signer: string) {
  return await sealEnvelope(kind as Kind, payload as never, key, signer);
}

/** Draws the family's envelopes, all signed by `key` where they are signed at all. */
async function envelopes(count: number, seed: number, key: PrivateKey): Promise<Uint8Array[]> {
  const signer = peerIdFromPrivateKey(key).toString();
  const valid = validPayloads(signer);
  const kinds = Object.keys(valid) as Kind[];
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

/**
 * Sends `sample` over gossip and junk on the direct protocols from `peer` to `agent` (jobs for
 * `held` too, where the agent holds a model).
 */
async function throughAgent(
  tally: FamilyTally,
  agent: AgentProcess,
  peer: TestPeer,
  sample: Uint8Array[],
  seed: number,
  held?: HeldModel,
): Promise<void> {
  const before = await gossipCounts(agent);
  const topics = [
    peer.topics.directives,
    peer.topics.status,
    peer.topics.adverts,
    peer.topics.registry,
  ];
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
  for (
    const protocol of [DIRECTIVES_SYNC_PROTOCOL, STATUS_QUERY_PROTOCOL, REGISTRY_SYNC_PROTOCOL]
  ) {
    for (const junk of draw(hostileValue(), STREAM_SAMPLE, seed)) {
      const outcome: Outcome = await peer.converse(protocol, [{ send: junk }, { receive: true }])
        .then(([reply]): Outcome => {
          const message = (reply as { error?: { message?: unknown } })?.error?.message;
          return typeof message === "string"
            ? { kind: "rejected", reason: `refused: ${message}` }
            : { kind: "accepted" };
        })
        .catch((err) => ({ kind: "rejected", reason: `stream ended: ${(err as Error).message}` }));
      tally.record(outcome, () => `${protocol} ${describe(junk)}`);
    }
  }
  await jobOffers(tally, peer, sample, seed, held);
  const live = await agent.request("/livez").then((r) => r.status).catch(() => 0);
  tally.record(
    live === 200 ? { kind: "rejected", reason: "agent still answers" } : {
      kind: "crash",
      what: `agent no longer answers (/livez ${live})`,
    },
    () => "the whole sample",
  );
}

/** A model a fuzzed agent holds, for offers it takes. */
interface HeldModel {
  name: string;
  blobHash: string;
}

/** An offer's frame and its body's, for `body` as declared (`declared`, default the same). */
async function offerFrames(
  peer: TestPeer,
  offer: ReturnType<typeof validOffer>,
  body: Uint8Array,
  declared = body,
): Promise<Uint8Array[]> {
  const signed = await signAny(
    "infer_offer",
    {
      ...offer,
      body_bytes: declared.length,
      body_sha256: createSha256().update(declared).digest("hex"),
    },
    peer.privateKey,
    peer.peerId,
  );
  return [encodeFrame("offer", signed), ...(body.length > 0 ? [encodeFrame("body", body)] : [])];
}

/**
 * Hostile frames on `/loam/infer/1`: refused envelopes as offers (and under other tags), offers
 * signed right for a model the agent does not hold, and, where it holds one, offers it takes
 * with hostile tensor bodies or a body that is not the one declared. Each must end in a
 * refusal the executor names, an error answer (below 500) from the model's route, or a closed
 * stream.
 */
async function jobOffers(
  tally: FamilyTally,
  peer: TestPeer,
  sample: Uint8Array[],
  seed: number,
  held?: HeldModel,
): Promise<void> {
  const elsewhere = validOffer(peer.peerId);
  const conversations: [string, Uint8Array[]][] = [
    ...sample.slice(0, STREAM_SAMPLE).map((bytes, i): [string, Uint8Array[]] => {
      const tag = INFER_TAGS[i % INFER_TAGS.length]!;
      return [`tag ${tag} ${describe(bytes)}`, [new Uint8Array([tag, ...bytes])]];
    }),
    ["a signed offer, no body", await offerFrames(peer, elsewhere, new Uint8Array())],
    ["a signed offer and its body", await offerFrames(peer, elsewhere, text({}))],
  ];
  if (held) {
    const offer = {
      ...validOffer(peer.peerId),
      model: held.name,
      blob_hash: held.blobHash,
      path: `/v1/models/${held.name}/infer`,
    };
    const tensors = { inputs: { x: { dims: [1, 4], type: "float32", data: [1, 2, 3, 4] } } };
    for (const body of draw(mutatedJson(tensors), STREAM_SAMPLE, seed)) {
      const bytes = text(body);
      conversations.push([
        `an offer taken, body ${describe(bytes)}`,
        await offerFrames(peer, { ...offer, job_id: crypto.randomUUID() }, bytes),
      ]);
    }
    conversations.push([
      "an offer taken, a body that is not the one declared",
      await offerFrames(
        peer,
        offer,
        text(tensors),
        text({ inputs: { x: { ...tensors.inputs.x, data: [4, 3, 2, 1] } } }),
      ),
    ]);
  }
  for (const [what, frames] of conversations) {
    tally.record(
      await offerOutcome(peer, frames, held !== undefined),
      () => `${INFER_PROTOCOL} ${what}`,
    );
  }
}

/**
 * Sends a job's frames and reads the executor's answer, and where it took the job, the head of
 * the job's answer: a 500 there is a crash (the route broke on a body the executor took).
 */
async function offerOutcome(
  peer: TestPeer,
  frames: Uint8Array[],
  mayTake: boolean,
): Promise<Outcome> {
  let took = false;
  try {
    const stream = await peer.openMessages(INFER_PROTOCOL);
    try {
      for (const bytes of frames) await stream.write(bytes);
      const answer = frameJson(await stream.read(), "answer") as {
        ok?: boolean;
        message?: string;
      };
      if (answer?.ok === false && answer.message) {
        return { kind: "rejected", reason: `offer refused: ${answer.message}` };
      }
      if (answer?.ok !== true || !mayTake) {
        return { kind: "crash", what: `the executor answered ${JSON.stringify(answer)}` };
      }
      took = true;
      const status = (frameJson(await stream.read(), "head") as { status?: number })?.status;
      if (status === undefined || status >= 500) {
        return { kind: "crash", what: `the job's answer was ${status ?? "not a head"}` };
      }
      if (status < 300) return { kind: "accepted" };
      // the error answer's first data frame holds the route's `{"error": {"message"}}`
      const error = frameJson(await stream.read(), "data") as { error?: { message?: unknown } };
      const message = error?.error?.message;
      return {
        kind: "rejected",
        reason: typeof message === "string" ? `the job answered ${status}: ${message}` : "",
      };
    } finally {
      await stream.close().catch(() => {});
    }
  } catch (err) {
    const when = took ? " after the executor took the job" : "";
    return { kind: "rejected", reason: `stream ended${when}: ${(err as Error).message}` };
  }
}

/** A message's JSON when it is a `kind` frame; undefined otherwise. */
function frameJson(bytes: Uint8Array, kind: FrameKind): unknown {
  const frame = decodeFrame(bytes);
  return frame.kind === kind ? jsonOfFrame(frame) : undefined;
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

/** Loads the tiny ONNX model on `agent`, for jobs a peer offers it. */
async function loadModel(agent: AgentProcess, url: string, model: Uint8Array): Promise<HeldModel> {
  const res = await postArtifact(agent, "fuzz-model", model, url, { type: "onnx_model" });
  await res.body?.cancel();
  const record = await settledDeployment(agent, "fuzz-model");
  if (record.state !== "active") throw new Error(`the model did not load: ${record.error}`);
  return { name: "onnx-fuzz-model", blobHash: `sha256:${sha256Hex(model)}` };
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
  const model = tinyOnnxModel();
  await using http = startBlobServer({ "/model": { body: model } });
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
        const held = keyed ? await loadModel(agent, http.url("/model"), model) : undefined;
        await throughAgent(agentTally, agent, peer, sample, seed, held);
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
