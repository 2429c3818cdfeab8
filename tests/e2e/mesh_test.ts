import assert from "node:assert/strict";
import { generateKeyPair } from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { toString as bytesToString } from "uint8arrays/to-string";
import { type AgentProcess, runLoam, startAgent, tempDir } from "./harness.ts";
import {
  eventually,
  hasConnectedAdvert,
  metric,
  peerIdOf,
  peersOf,
  requestBlob,
} from "./mesh_helpers.ts";
import { startTestPeer } from "../fixtures/mesh_peer.ts";
import { testAdvert } from "../fixtures/advert.ts";
import {
  randomBytes,
  sha256Hex,
  startBlobServer,
  writeRandomFile,
} from "../fixtures/blob_server.ts";
import { sealEnvelope } from "../../src/protocol/envelope.ts";
import type { DeploymentDirective } from "../../src/protocol/directive.ts";
import { hashFile } from "../../src/blobs/digest.ts";
import { sleep } from "../../src/system/sleep.ts";

const FAST = ["--set", "mesh.advert_interval=1"];

async function stopAll(agents: AgentProcess[]): Promise<void> {
  await Promise.all(agents.map((a) => a.stop()));
}

async function fileHash(path: string): Promise<string> {
  return (await hashFile(path)).hash.digest("hex");
}

Deno.test("four agents bootstrapped from one see each other's peers and adverts", async () => {
  await using dir = await tempDir();
  const a = await startAgent(`${dir.path}/a`, ["--node-id", "node-a", ...FAST]);
  const others = await Promise.all(
    ["b", "c", "d"].map((n) =>
      startAgent(`${dir.path}/${n}`, [
        "--node-id",
        `node-${n}`,
        "--bootstrap",
        a.meshAddrs[0]!,
        ...FAST,
      ])
    ),
  );
  const all = [a, ...others];
  const names = new Map(all.map((agent, i) => [agent, `node-${"abcd"[i]}`]));
  try {
    for (const agent of all) {
      const me = peerIdOf(agent);
      const expected = all.filter((x) => x !== agent).map((x) => names.get(x)!).sort();
      await eventually(`${names.get(agent)} has the adverts of ${expected}`, async () => {
        const peers = await peersOf(agent);
        const seen = peers.filter((p) => p.advert).map((p) => p.advert!.node_id).sort();
        return JSON.stringify(seen) === JSON.stringify(expected);
      });
      const status = await (await agent.request("/v1/status", { token: agent.adminToken() }))
        .json();
      assert.ok(status.peer_count >= 1, `peer_count ${status.peer_count}`);
      assert.equal(status.network, "default");
      assert.match(status.listen_addrs[0], new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${me}$`));
    }
    const fromA = await peersOf(a);
    assert.equal(
      fromA.filter((p) => p.connected).length,
      3,
      "the bootstrap node is connected to all",
    );
    await eventually(
      "ping latency",
      async () => (await peersOf(a)).every((p) => p.latency_ms !== null),
    );
  } finally {
    await stopAll(all);
  }
});

function directive(issuer: string): DeploymentDirective {
  return {
    directive_id: `d-${crypto.randomUUID()}`,
    issued_at: new Date().toISOString(),
    issuer_node_id: issuer,
    scope: { type: "broadcast" },
    artifact: {
      blob_hash: `sha256:${"a".repeat(64)}`,
      size_bytes: 10,
      urls: [],
      artifact_type: { type: "onnx_model", execution_providers: [] },
    },
    capabilities: [],
    config: {},
    options: {
      priority: "normal",
      timeout_seconds: 300,
      replace_existing: false,
      auto_activate: true,
    },
  };
}

const text = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

Deno.test("invalid, unsigned-by-sender and untrusted messages are dropped, counted and not forwarded", async () => {
  await using dir = await tempDir();
  const trustedKey = await generateKeyPair("Ed25519");
  const trusted = peerIdFromPrivateKey(trustedKey).toString();
  const trust = ["--set", `mesh.trusted_issuers=${trusted}`, ...FAST];
  const a = await startAgent(`${dir.path}/a`, trust);
  const b = await startAgent(`${dir.path}/b`, ["--bootstrap", a.meshAddrs[0]!, ...trust]);
  try {
    await eventually("b connected to a", async () => (await peersOf(b)).some((p) => p.connected));
    await using evil = await startTestPeer({ dial: a.meshAddrs[0]! });
    await using issuer = await startTestPeer({ dial: a.meshAddrs[0]!, privateKey: trustedKey });
    const t = evil.topics;
    const goodAdvertShape = { node_id: "x", peer_id: evil.peerId };
    const cases: [string, string, Uint8Array][] = [
      [
        "untrusted_issuer",
        t.directives,
        await sealEnvelope("directive", directive("evil"), evil.privateKey, evil.peerId),
      ],
      [
        "bad_signature",
        t.directives,
        text({
          v: 1,
          kind: "directive",
          payload: JSON.stringify(directive("forged")),
          signer: trusted,
          sig: bytesToString(await evil.privateKey.sign(new Uint8Array([1])), "base64"),
        }),
      ],
      [
        "signer_mismatch",
        t.directives,
        await sealEnvelope("directive", directive("replayed"), trustedKey, trusted),
      ],
      ["oversized", t.adverts, randomBytes(1024 * 1024 + 10)],
      ["not_json", t.status, new TextEncoder().encode("hello")],
      [
        "unknown_kind",
        t.adverts,
        text({ v: 1, kind: "frobnicate", payload: "{}", signer: evil.peerId, sig: "" }),
      ],
      [
        "unknown_version",
        t.adverts,
        text({ v: 2, kind: "advert", payload: "{}", signer: evil.peerId, sig: "" }),
      ],
      [
        "schema",
        t.adverts,
        await sealEnvelope("advert", goodAdvertShape as never, evil.privateKey, evil.peerId),
      ],
      [
        "wrong_topic",
        t.adverts,
        await sealEnvelope("directive", directive("x"), evil.privateKey, evil.peerId),
      ],
    ];
    for (const [, topic, data] of cases) await evil.publish(topic, data);
    await issuer.publish(
      t.directives,
      await sealEnvelope("directive", directive("c2"), trustedKey, trusted),
    );

    for (const [reason] of cases) {
      await eventually(
        `a drops ${reason}`,
        async () => await metric(a, `loam_mesh_messages_dropped_total{reason="${reason}"}`) === 1,
      );
    }
    await eventually(
      "the trusted directive reaches b through a",
      async () => await metric(b, `loam_mesh_messages_accepted_total{kind="directive"}`) === 1,
    );
    assert.equal(await metric(a, `loam_mesh_messages_accepted_total{kind="directive"}`), 1);
    for (const [reason] of cases) {
      assert.equal(
        await metric(b, `loam_mesh_messages_dropped_total{reason="${reason}"}`),
        0,
        `${reason} was not forwarded`,
      );
    }
  } finally {
    await stopAll([a, b]);
  }
});

const BLOB_SIZE = 100 * 1024 * 1024;

/** Writes a random blob and stores it in `dataDir` with `loam fetch`, as an operator would. */
async function seed(dataDir: string, source: string, url: string, size: number): Promise<string> {
  const hex = await writeRandomFile(source, size);
  const res = await runLoam(["fetch", url, "--sha256", hex, "--data-dir", dataDir]);
  assert.equal(res.code, 0, res.stderr);
  return hex;
}

Deno.test("a 100 MB blob held by one agent moves to three others by peer-to-peer transfer, no URL", async () => {
  await using dir = await tempDir();
  const source = `${dir.path}/blob.bin`;
  await using http = startBlobServer({ "/blob": { body: { file: source, size: BLOB_SIZE } } });
  const hex = await seed(`${dir.path}/a`, source, http.url("/blob"), BLOB_SIZE);
  await http.close();
  const a = await startAgent(`${dir.path}/a`, FAST);
  const others = await Promise.all(
    ["b", "c", "d"].map((n) =>
      startAgent(`${dir.path}/${n}`, ["--bootstrap", a.meshAddrs[0]!, ...FAST])
    ),
  );
  try {
    for (const agent of others) {
      await eventually(
        "a's advert lists the blob",
        async () =>
          (await peersOf(agent)).some((p) => p.peer_id === peerIdOf(a) && p.advert?.blobs === 1),
      );
    }
    const results = await Promise.all(
      others.map((agent) => requestBlob(agent, { sha256: hex, size: BLOB_SIZE })),
    );
    for (const [i, result] of results.entries()) {
      assert.equal(result.status, 200, JSON.stringify(result.body));
      assert.equal(result.body.path, `${others[i]!.dataDir}/blobs/sha256/${hex}`);
      assert.equal(await fileHash(result.body.path!), hex);
    }
    const served = await Promise.all(
      [a, ...others].map((x) => metric(x, "loam_blob_bytes_served_total")),
    );
    assert.equal(
      served.reduce((x, y) => x + y, 0),
      3 * BLOB_SIZE,
      `bytes served per agent: ${served}`,
    );
    assert.equal(http.requests.length, 1, "only the seeding fetch used HTTP");
  } finally {
    await stopAll([a, ...others]);
  }
});

Deno.test("a peer that serves corrupted bytes is caught and another holder is used", async () => {
  await using dir = await tempDir();
  const body = randomBytes(8 * 1024 * 1024);
  const hex = sha256Hex(body);
  await using http = startBlobServer({ "/blob": { body } });
  const retry = ["--set", "fetch.backoff_initial_ms=300", "--set", "fetch.retries=10"];
  const b = await startAgent(`${dir.path}/b`, [...FAST, ...retry]);
  const c = await startAgent(`${dir.path}/c`, ["--bootstrap", b.meshAddrs[0]!, ...FAST]);
  try {
    const corrupted = body.slice();
    corrupted[4_000_000] ^= 0xff;
    await using liar = await startTestPeer({ dial: b.meshAddrs[0]!, serveBytes: corrupted });
    const now = new Date().toISOString();
    await liar.publish(
      liar.topics.adverts,
      await sealEnvelope(
        "advert",
        testAdvert("liar", liar.peerId, { version: "0.0.0", sent_at: now, blobs: [hex] }),
        liar.privateKey,
        liar.peerId,
      ),
    );
    await eventually(
      "b knows the liar holds the blob",
      async () =>
        (await peersOf(b)).some((p) => p.advert?.node_id === "liar" && p.advert.blobs === 1),
    );

    // only the liar holds it at first: b must try it, detect the bad bytes and wait for another
    const fetching = requestBlob(b, { sha256: hex, size: body.length });
    await eventually(
      "the liar served its bytes",
      () => Promise.resolve(liar.bytesServed() >= body.length),
    );
    await b.waitForLog((l) => l.msg === "downloaded bytes do not match the hash", 10_000);
    const seeded = await requestBlob(c, {
      sha256: hex,
      size: body.length,
      urls: [http.url("/blob")],
    });
    assert.equal(seeded.status, 200);

    const result = await fetching;
    assert.equal(result.status, 200, JSON.stringify(result.body));
    assert.equal(await fileHash(result.body.path!), hex);
    assert.equal(liar.bytesServed(), body.length, "the liar was asked once, never again");
    assert.ok(await metric(c, "loam_blob_bytes_served_total") >= body.length);
    const mismatch = b.logs.find((l) => l.msg === "downloaded bytes do not match the hash");
    assert.deepEqual(mismatch?.contributors, [`peer:${liar.peerId}`]);
  } finally {
    await stopAll([b, c]);
  }
});

Deno.test("a holder killed mid-transfer: the download resumes from another holder", async () => {
  await using dir = await tempDir();
  const source = `${dir.path}/blob.bin`;
  await using http = startBlobServer({ "/blob": { body: { file: source, size: BLOB_SIZE } } });
  const hex = await seed(`${dir.path}/a`, source, http.url("/blob"), BLOB_SIZE);
  assert.equal(
    (await runLoam(["fetch", http.url("/blob"), "--sha256", hex, "--data-dir", `${dir.path}/c`]))
      .code,
    0,
  );
  const a = await startAgent(`${dir.path}/a`, FAST);
  const c = await startAgent(`${dir.path}/c`, ["--bootstrap", a.meshAddrs[0]!, ...FAST]);
  const b = await startAgent(`${dir.path}/b`, [
    "--bootstrap",
    a.meshAddrs[0]!,
    "--bootstrap",
    c.meshAddrs[0]!,
    "--set",
    `fetch.bandwidth_limit=${25 * 1024 * 1024}`,
    "--set",
    "fetch.stall_seconds=2",
    ...FAST,
  ]);
  const survivors = [a, b, c];
  try {
    await eventually(
      "b sees both holders",
      async () => (await peersOf(b)).filter((p) => p.advert?.blobs === 1).length === 2,
    );
    const fetching = requestBlob(b, { sha256: hex, size: BLOB_SIZE });
    // kill the serving holder once b has 20 MB on disk (the sender counts bytes still in flight)
    await eventually(
      "b has 20 MB of the blob",
      async () => (await Deno.stat(`${b.dataDir}/blobs/partial/${hex}`)).size > 20 * 1024 * 1024,
    );
    const [fromA, fromC] = [
      await metric(a, "loam_blob_bytes_served_total"),
      await metric(c, "loam_blob_bytes_served_total"),
    ];
    const [victim, other] = fromA >= fromC ? [a, c] : [c, a];
    await victim.stop("SIGKILL");
    survivors.splice(survivors.indexOf(victim), 1);
    const result = await fetching;
    assert.equal(result.status, 200, JSON.stringify(result.body));
    assert.equal(await fileHash(result.body.path!), hex);
    const fromOther = await metric(other, "loam_blob_bytes_served_total");
    assert.ok(
      fromOther < BLOB_SIZE - 15 * 1024 * 1024,
      `the other holder sent ${fromOther} bytes: a resume, not a restart`,
    );
  } finally {
    await stopAll(survivors);
  }
});

Deno.test("a holder found only through the DHT (its adverts predate the fetcher)", async () => {
  await using dir = await tempDir();
  const body = randomBytes(2 * 1024 * 1024);
  const hex = sha256Hex(body);
  await using http = startBlobServer({ "/blob": { body } });
  assert.equal(
    (await runLoam(["fetch", http.url("/blob"), "--sha256", hex, "--data-dir", `${dir.path}/a`]))
      .code,
    0,
  );
  const slow = ["--set", "mesh.advert_interval=3600"];
  const a = await startAgent(`${dir.path}/a`, slow);
  const b = await startAgent(`${dir.path}/b`, ["--bootstrap", a.meshAddrs[0]!, ...slow]);
  try {
    await eventually("b connected to a", async () => (await peersOf(b)).some((p) => p.connected));
    assert.ok((await peersOf(b)).every((p) => p.advert === null), "b has no advert from a");
    const result = await requestBlob(b, { sha256: hex });
    assert.equal(result.status, 200, JSON.stringify(result.body));
    assert.equal(await fileHash(result.body.path!), hex);
  } finally {
    await stopAll([a, b]);
  }
});

Deno.test("mDNS finds peers of the same network on the LAN; other networks never mix", async () => {
  await using dir = await tempDir();
  const n1 = `fleet-${crypto.randomUUID().slice(0, 8)}`;
  const n2 = `fleet-${crypto.randomUUID().slice(0, 8)}`;
  const mdns = (
    network: string,
  ) => ["--set", "mesh.mdns=true", "--set", `mesh.network=${network}`, ...FAST];
  const x = await startAgent(`${dir.path}/x`, mdns(n1));
  const y = await startAgent(`${dir.path}/y`, mdns(n1));
  const z = await startAgent(`${dir.path}/z`, ["--bootstrap", x.meshAddrs[0]!, ...mdns(n2)]);
  try {
    await eventually(
      "x and y find each other by mDNS and exchange adverts",
      () => hasConnectedAdvert(y, x),
    );
    // z is connected to x (bootstrap) but speaks another network: no adverts cross over
    await eventually(
      "z connected to x",
      async () => (await peersOf(z)).some((p) => p.peer_id === peerIdOf(x)),
    );
    await sleep(2500);
    assert.ok(
      (await peersOf(z)).every((p) => p.advert === null),
      "z got no advert from the other fleet",
    );
    assert.ok((await peersOf(x)).every((p) => p.peer_id !== peerIdOf(z) || p.advert === null));
    assert.ok(
      (await peersOf(y)).every((p) => p.peer_id !== peerIdOf(z)),
      "mDNS did not bring z to y",
    );
  } finally {
    await stopAll([x, y, z]);
  }
});
