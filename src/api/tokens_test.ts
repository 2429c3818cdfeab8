import assert from "node:assert/strict";
import { parseScopes, TokenStore } from "./tokens.ts";
import { UserError } from "../system/errors.ts";

async function withStore(fn: (store: TokenStore, dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(new TokenStore(`${dir}/tokens.json`), dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("tokens are stored as SHA-256 hashes and authenticate by secret", async () => {
  await withStore(async (store, dir) => {
    const secret = await store.create("ro", ["status:read"]);
    const text = await Deno.readTextFile(`${dir}/tokens.json`);
    assert.ok(!text.includes(secret));
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-256", new TextEncoder().encode(secret)),
    );
    const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
    assert.ok(text.includes(hex));
    assert.equal((await store.authenticate(secret))?.name, "ro");
    assert.equal(await store.authenticate(secret + "x"), undefined);
    assert.equal(await store.authenticate("not-a-token"), undefined);
  });
});

Deno.test("ensureAdmin writes the admin secret once, mode 0600", async () => {
  await withStore(async (store, dir) => {
    assert.equal(await store.ensureAdmin(`${dir}/admin.token`), true);
    const secret = (await Deno.readTextFile(`${dir}/admin.token`)).trim();
    assert.equal((await Deno.stat(`${dir}/admin.token`)).mode! & 0o777, 0o600);
    assert.deepEqual((await store.authenticate(secret))?.scopes, ["*"]);
    assert.equal(await store.ensureAdmin(`${dir}/admin.token`), false);
    assert.equal((await Deno.readTextFile(`${dir}/admin.token`)).trim(), secret);
  });
});

Deno.test("a second store sees changes made through the first within a quarter second (file reload)", async () => {
  await withStore(async (store, dir) => {
    const other = new TokenStore(`${dir}/tokens.json`);
    assert.deepEqual(await other.list(), []);
    const secret = await store.create("a", ["infer:run"]);
    assert.equal((await other.list()).length, 1); // list() always looks at the file
    assert.equal((await other.authenticate(secret))?.name, "a");
    await store.revoke("a");
    await new Promise((resolve) => setTimeout(resolve, 260));
    assert.equal(await other.authenticate(secret), undefined);
  });
});

Deno.test("a token made by another process works at once, without waiting for the next look", async () => {
  await withStore(async (store, dir) => {
    const other = new TokenStore(`${dir}/tokens.json`);
    const first = await store.create("first", ["infer:run"]);
    assert.equal((await other.authenticate(first))?.name, "first"); // other has just looked
    const second = await store.create("second", ["status:read"]);
    assert.equal((await other.authenticate(second))?.name, "second");
    assert.equal(await other.authenticate(`${second.slice(0, -1)}x`), undefined);
  });
});

Deno.test("bad names, duplicates, unknown scopes and corrupt files are clear errors", async () => {
  await withStore(async (store, dir) => {
    await assert.rejects(store.create("bad name", ["*"]), UserError);
    await store.create("x", ["*"]);
    await assert.rejects(store.create("x", ["*"]), /already exists/);
    await assert.rejects(store.revoke("nope"), /no token named "nope"/);
    assert.throws(() => parseScopes("status:read,root"), /unknown scope "root"/);
    assert.throws(() => parseScopes(" , "), /at least one scope/);
    assert.deepEqual(parseScopes("status:read, status:read,*"), ["status:read", "*"]);
    await Deno.writeTextFile(`${dir}/tokens.json`, "{ nope");
    await assert.rejects(store.refresh(), /is not valid JSON/);
    await Deno.writeTextFile(
      `${dir}/tokens.json`,
      JSON.stringify({ version: 1, tokens: [{ name: 1 }] }),
    );
    await assert.rejects(store.refresh(), /is invalid at tokens\.0\.name/);
  });
});

Deno.test("a token with expires_at works until then, is refused after, and goes at the next write", async () => {
  await withStore(async (store, dir) => {
    const session = await store.createSession(["status:read"], 60_000);
    assert.match(session.name, /^console-[0-9a-f]{8}$/);
    assert.equal((await store.authenticate(session.token))?.name, session.name);
    assert.ok(Date.parse(session.expires_at) > Date.now());
    assert.deepEqual((await store.list()).map((t) => t.expires_at), [session.expires_at]);

    const past = new Date(Date.now() - 1000);
    const old = await store.create("old", ["*"], undefined, past);
    assert.equal(await store.authenticate(old), undefined, "expired");
    assert.deepEqual((await store.list()).map((t) => t.name), [session.name]);
    await store.create("next", ["status:read"]);
    const file = JSON.parse(await Deno.readTextFile(`${dir}/tokens.json`));
    assert.deepEqual(file.tokens.map((t: { name: string }) => t.name), [session.name, "next"]);
  });
});
