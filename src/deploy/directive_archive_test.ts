import assert from "node:assert/strict";
import { generateKeyPair } from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import type { PrivateKey } from "@libp2p/interface";
import type { DeploymentDirective } from "../protocol/directive.ts";
import { testDirective } from "../../tests/fixtures/directive.ts";
import type { RollbackOrder } from "../protocol/rollback.ts";
import { sealEnvelope } from "../protocol/envelope.ts";
import { createLogger } from "../system/logger.ts";
import { type ArchiveOptions, DirectiveArchive } from "./directive_archive.ts";
import { sleep } from "../system/sleep.ts";

const logger = createLogger({ level: "error", format: "json" });

/** A config package directive of issuer "c2" named "svc" (the name replacement matches on). */
function directive(id: string, extra: Record<string, unknown> = {}): DeploymentDirective {
  return testDirective(id, { type: "config_package", target_path: "/tmp/x" }, {
    issuer_node_id: "c2",
    artifact: { name: "svc" },
    ...extra,
  });
}

function rollback(directiveId: string): RollbackOrder {
  return {
    rollback_id: `rollback-${directiveId}`,
    directive_id: directiveId,
    issued_at: new Date().toISOString(),
    issuer_node_id: "c2",
    reason: "",
  };
}

async function fixture() {
  const key = await generateKeyPair("Ed25519");
  const issuer = peerIdFromPrivateKey(key).toString();
  const dir = await Deno.makeTempDir();
  const options: ArchiveOptions = {
    dir,
    ttlHours: 168,
    trustedIssuers: [issuer],
    maxMessageBytes: 1024 * 1024,
    logger,
  };
  const archive = new DirectiveArchive(options);
  await archive.load();
  const seal = async (kind: "directive" | "rollback", payload: unknown, by: PrivateKey = key) =>
    new TextDecoder().decode(
      await sealEnvelope(kind, payload as never, by, peerIdFromPrivateKey(by).toString()),
    );
  return {
    archive,
    options,
    dir,
    seal,
    offer: async (d: DeploymentDirective) =>
      await archive.offerDirective(d, await seal("directive", d)),
    offerRollback: async (r: RollbackOrder) =>
      await archive.offerRollback(r, await seal("rollback", r)),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

const all = { maxCount: 64, maxBytes: 4 * 1024 * 1024 };
const none = { directives: [], rollbacks: [] };

Deno.test("archive: a directive in force is kept and handed to a peer that lacks it, once", async () => {
  await using f = await fixture();
  assert.equal(await f.offer(directive("d1")), "new");
  assert.equal(await f.offer(directive("d1")), "known");
  assert.deepEqual(f.archive.ids(), { directives: ["d1"], rollbacks: [] });
  assert.equal(f.archive.envelopesFor(none, all).envelopes.length, 1);
  assert.deepEqual(f.archive.envelopesFor(f.archive.ids(), all), { envelopes: [], more: false });
  assert.deepEqual(f.archive.lacking({ directives: ["d1", "d2"], rollbacks: ["r9"] }), {
    directives: ["d2"],
    rollbacks: ["r9"],
  });
});

Deno.test("archive: a rolled-back directive never starts, whichever arrives first", async () => {
  await using f = await fixture();
  // directive first, then its rollback: the envelope ends, only the rollback is handed on
  assert.equal(await f.offer(directive("a")), "new");
  assert.equal(await f.offerRollback(rollback("a")), "new");
  const handed = f.archive.envelopesFor(none, all).envelopes.map((e) => JSON.parse(e).kind);
  assert.deepEqual(handed, ["rollback"]);
  // rollback first (a peer that saw it), then the directive from a peer that missed it
  assert.equal(await f.offerRollback(rollback("b")), "new");
  assert.ok(f.archive.ids().directives.includes("b"), "b is not asked for again");
  assert.equal(await f.offer(directive("b")), "rolled_back");
  assert.equal(await f.offerRollback(rollback("b")), "known");
});

Deno.test("archive: past its expiry or the TTL a directive is neither taken nor handed on", async () => {
  await using f = await fixture();
  const past = new Date(Date.now() - 1000).toISOString();
  assert.equal(await f.offer(directive("gone", { expires_at: past })), "expired");
  const old = new Date(Date.now() - 169 * 3600_000).toISOString();
  assert.equal(await f.offer(directive("old", { issued_at: old })), "expired");
  const soon = new Date(Date.now() + 150).toISOString();
  assert.equal(await f.offer(directive("soon", { expires_at: soon })), "new");
  await sleep(200);
  assert.deepEqual(f.archive.envelopesFor(none, all).envelopes, []);
  assert.equal(await f.offer(directive("other")), "new");
  assert.deepEqual(f.archive.ids().directives, ["other"], "the expired entry is pruned");
});

Deno.test("archive: a later replace_existing directive for the same scope supersedes an older one", async () => {
  await using f = await fixture();
  const t0 = new Date(Date.now() - 60_000).toISOString();
  assert.equal(await f.offer(directive("v1", { issued_at: t0 })), "new");
  const v2 = directive("v2", { options: { replace_existing: true } });
  assert.equal(await f.offer(v2), "new");
  const handed = f.archive.envelopesFor(none, all).envelopes.map((e) =>
    JSON.parse(JSON.parse(e).payload).directive_id
  );
  assert.deepEqual(handed, ["v2"]);
  // an older one arriving late from a peer that missed v2 stays out
  const t1 = new Date(Date.now() - 30_000).toISOString();
  assert.equal(await f.offer(directive("v1b", { issued_at: t1 })), "replaced");
  // another scope is not replaced
  const north = directive("v1n", {
    issued_at: t1,
    scope: { type: "formation", formation_id: "n" },
  });
  assert.equal(await f.offer(north), "new");
});

Deno.test("archive: limits per exchange, rollbacks first, and `more` for the rest", async () => {
  await using f = await fixture();
  for (let i = 0; i < 5; i++) await f.offer(directive(`d${i}`));
  await f.offerRollback(rollback("x"));
  const first = f.archive.envelopesFor(none, { maxCount: 2, maxBytes: 1 << 20 });
  assert.equal(first.more, true);
  assert.equal(JSON.parse(first.envelopes[0]!).kind, "rollback");
  const one = f.archive.envelopesFor(none, { maxCount: 64, maxBytes: 10 });
  assert.equal(one.envelopes.length, 1, "one envelope larger than the byte limit still travels");
  assert.equal(one.more, true);
});

Deno.test("archive: reloaded after a restart; a tampered or no longer trusted envelope is dropped", async () => {
  await using f = await fixture();
  await f.offer(directive("keep"));
  await f.offer(directive("tamper"));
  await f.offerRollback(rollback("gone"));
  const path = `${f.dir}/directive-tamper.json`;
  const saved = JSON.parse(await Deno.readTextFile(path));
  saved.envelope = saved.envelope.replace("svc", "evil");
  await Deno.writeTextFile(path, JSON.stringify(saved));
  await Deno.writeTextFile(`${f.dir}/directive-junk.json`, "{not json");
  const again = new DirectiveArchive(f.options);
  const problems = await again.load();
  assert.equal(problems.length, 2, problems.join("\n"));
  assert.match(problems.join("\n"), /does not verify/);
  assert.deepEqual(again.ids().directives.sort(), ["gone", "keep"]);
  assert.equal(await again.offerDirective(directive("keep"), "unused"), "known");
  const untrusting = new DirectiveArchive({ ...f.options, trustedIssuers: [] });
  assert.equal((await untrusting.load()).length, 2, "signer left mesh.trusted_issuers");
  assert.deepEqual(untrusting.ids(), none);
});
