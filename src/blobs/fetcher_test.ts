import assert from "node:assert/strict";
import { BlobFetcher, type FetchProgress, type FetchSettings } from "./fetcher.ts";
import { BlobStore } from "./store.ts";
import { createLogger } from "../system/logger.ts";
import { BlobFetchFailed, BlobRequestInvalid } from "./fetch_errors.ts";
import { randomBytes, sha256Hex, startBlobServer } from "../../tests/fixtures/blob_server.ts";

const SETTINGS: FetchSettings = {
  sources: "urls-first",
  retries: 3,
  backoffInitialMs: 10,
  backoffMaxMs: 50,
  timeoutMs: 30_000,
  stallMs: 10_000,
  maxConcurrent: 2,
  bandwidthLimit: 0,
  diskReserveBytes: 0,
};

const quiet = createLogger({ level: "error", format: "json", write: () => {} });

interface Fixture extends AsyncDisposable {
  store: BlobStore;
  fetcher: BlobFetcher;
  dir: string;
}

async function fixture(settings: Partial<FetchSettings> = {}): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "loam-blobs-" });
  const store = new BlobStore(`${dir}/blobs`);
  const fetcher = new BlobFetcher(store, { ...SETTINGS, ...settings }, quiet);
  return {
    store,
    fetcher,
    dir,
    async [Symbol.asyncDispose]() {
      fetcher.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function storeContents(store: BlobStore): Promise<{ verified: string[]; partial: string[] }> {
  const names = async (dir: string) => {
    const out: string[] = [];
    for await (const e of Deno.readDir(dir)) out.push(e.name);
    return out.sort();
  };
  return { verified: await names(store.verifiedDir), partial: await names(store.partialDir) };
}

async function rejectsFetch(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof BlobFetchFailed, String(err));
    assert.equal(err.exitCode, 1);
    assert.match(err.message, pattern);
    return true;
  });
}

const DATA = randomBytes(300_000);
const HEX = sha256Hex(DATA);

Deno.test("fetch: downloads, verifies while streaming, commits read-only and reports progress", async () => {
  await using f = await fixture();
  await using server = startBlobServer({ "/a": { body: DATA, etag: '"v1"' } });
  const events: FetchProgress[] = [];
  const { path } = await f.fetcher.ensure(
    { sha256: `sha256:${HEX.toUpperCase()}`, urls: [server.url("/a")], size: DATA.length },
    (p) => events.push(p),
  );
  assert.equal(path, f.store.pathOf(HEX));
  assert.deepEqual(await Deno.readFile(path), DATA);
  assert.equal((await Deno.stat(path)).mode! & 0o777, 0o444);
  assert.deepEqual(await storeContents(f.store), { verified: [HEX], partial: [] });
  const last = events.at(-1)!;
  assert.equal(last.bytes, DATA.length);
  assert.equal(last.total, DATA.length);
  assert.ok(last.rate_bps > 0);
  assert.equal(last.source, server.url("/a"));

  const again = await f.fetcher.ensure({ sha256: HEX, urls: [server.url("/a")] });
  assert.deepEqual(again, { sha256: HEX, path, size_bytes: DATA.length });
  assert.equal(server.requests.length, 1, "a present blob is not fetched again");
  assert.deepEqual((await f.store.list()).map((b) => [b.sha256, b.size_bytes]), [[
    HEX,
    DATA.length,
  ]]);
});

Deno.test("fetch: a hash mismatch fails with expected and actual, keeps nothing", async () => {
  await using f = await fixture();
  await using server = startBlobServer({ "/a": { body: DATA } });
  const wrong = "ab".repeat(32);
  await rejectsFetch(
    f.fetcher.ensure({ sha256: wrong, urls: [server.url("/a")] }),
    new RegExp(`hash mismatch: expected sha256:${wrong}, got sha256:${HEX}`),
  );
  assert.deepEqual(await storeContents(f.store), { verified: [], partial: [] });
  assert.equal(server.requests.length, 1, "a URL that served wrong bytes from zero is not retried");
});

Deno.test("fetch: a dropped connection resumes with Range and If-Range from the bytes on disk", async () => {
  await using f = await fixture();
  await using server = startBlobServer({
    "/a": { body: DATA, etag: '"v1"', dropAfter: [100_000, 50_000] },
  });
  await f.fetcher.ensure({ sha256: HEX, urls: [server.url("/a")], size: DATA.length });
  assert.deepEqual(server.requests.map((r) => [r.status, r.range, r.ifRange, r.bytesSent]), [
    [200, null, null, 100_000],
    [206, "bytes=100000-", '"v1"', 50_000],
    [206, "bytes=150000-", '"v1"', 150_000],
  ]);
  assert.deepEqual(await storeContents(f.store), { verified: [HEX], partial: [] });
});

Deno.test("fetch: a server that ignores Range or changed its ETag restarts from zero", async () => {
  for (const route of [{ ranges: false }, { etag: () => `"${crypto.randomUUID()}"` }]) {
    await using f = await fixture();
    await using server = startBlobServer({ "/a": { body: DATA, dropAfter: [120_000], ...route } });
    await f.fetcher.ensure({ sha256: HEX, urls: [server.url("/a")], size: DATA.length });
    assert.deepEqual(server.requests.map((r) => [r.status, r.bytesSent]), [
      [200, 120_000],
      [200, DATA.length],
    ]);
    assert.ok(server.requests[1]!.range, "the retry asked for a range");
    assert.deepEqual(await Deno.readFile(f.store.pathOf(HEX)), DATA);
  }
});

Deno.test("fetch: Content-Length different from the declared size is refused", async () => {
  await using f = await fixture();
  await using server = startBlobServer({ "/a": { body: DATA } });
  await rejectsFetch(
    f.fetcher.ensure({ sha256: HEX, urls: [server.url("/a")], size: DATA.length - 1 }),
    /server says the blob is 300000 bytes, expected 299999/,
  );
  assert.deepEqual(await storeContents(f.store), { verified: [], partial: [] });
});

Deno.test("fetch: more bytes than declared abort at once and leave nothing", async () => {
  await using f = await fixture();
  const big = randomBytes(32 * 1024 * 1024);
  await using server = startBlobServer({ "/a": { body: big, contentLength: "omit" } });
  await rejectsFetch(
    f.fetcher.ensure({ sha256: sha256Hex(big), urls: [server.url("/a")], size: 100_000 }),
    /source sent more than the 100000 bytes declared/,
  );
  assert.ok(server.requests[0]!.bytesSent < big.length, "stopped reading early");
  assert.deepEqual(await storeContents(f.store), { verified: [], partial: [] });
});

Deno.test("fetch: a failing URL is skipped for the next one", async () => {
  await using f = await fixture();
  await using server = startBlobServer({ "/good": { body: DATA } });
  await f.fetcher.ensure({ sha256: HEX, urls: [server.url("/missing"), server.url("/good")] });
  assert.deepEqual(server.requests.map((r) => [r.path, r.status]), [["/missing", 404], [
    "/good",
    200,
  ]]);
});

Deno.test("fetch: 5xx and 429 are retried with backoff; the final error names each URL", async () => {
  await using f = await fixture({ retries: 2 });
  await using server = startBlobServer({
    "/flaky": { body: DATA, statuses: [503, 429] },
    "/down": { body: DATA, statuses: [500, 500, 500, 500] },
    "/gone": { body: DATA, statuses: [410] },
  });
  await f.fetcher.ensure({ sha256: HEX, urls: [server.url("/flaky")] });
  assert.deepEqual(server.requests.map((r) => r.status), [503, 429, 200]);

  const other = sha256Hex(new Uint8Array([1]));
  await rejectsFetch(
    f.fetcher.ensure({ sha256: other, urls: [server.url("/down"), server.url("/gone")] }),
    /\/down: HTTP 500 Internal Server Error; .*\/gone: HTTP 410 Gone/,
  );
  const down = server.requests.filter((r) => r.path === "/down").length;
  const gone = server.requests.filter((r) => r.path === "/gone").length;
  assert.equal(down, 3, "1 try + 2 retries");
  assert.equal(gone, 1, "a permanent error is not retried");
  assert.deepEqual((await storeContents(f.store)).partial, []);
});

Deno.test("fetch: a stalled transfer is dropped and resumed", async () => {
  await using f = await fixture({ stallMs: 300 });
  await using server = startBlobServer({
    "/a": { body: DATA, etag: '"v1"', dropAfter: [65_536], stallMs: 0 },
  });
  // second request stalls before its first byte, third completes
  let calls = 0;
  server.routes["/a"]!.etag = () => {
    calls++;
    server.routes["/a"]!.stallMs = calls === 2 ? 1500 : 0;
    return '"v1"';
  };
  await f.fetcher.ensure({ sha256: HEX, urls: [server.url("/a")] });
  assert.equal(server.requests.length, 3);
  assert.deepEqual(server.requests.map((r) => r.range), [null, "bytes=65536-", "bytes=65536-"]);
});

Deno.test("fetch: the overall timeout stops the fetch and keeps the partial for later", async () => {
  await using f = await fixture({ timeoutMs: 700 });
  await using server = startBlobServer({ "/slow": { body: DATA, bytesPerSecond: 200_000 } });
  await rejectsFetch(
    f.fetcher.ensure({ sha256: HEX, urls: [server.url("/slow")], size: DATA.length }),
    /overall fetch timeout reached/,
  );
  const partials = await f.store.listPartials();
  assert.equal(partials.length, 1);
  assert.ok(partials[0]!.bytes > 0 && partials[0]!.bytes < DATA.length);
  assert.deepEqual((await storeContents(f.store)).verified, []);

  server.routes["/slow"]!.bytesPerSecond = undefined;
  await using resumed = await fixture();
  const f2 = new BlobFetcher(f.store, SETTINGS, quiet);
  await f2.ensure({ sha256: HEX, urls: [server.url("/slow")], size: DATA.length });
  f2.close();
  assert.equal(server.requests.at(-1)!.range, `bytes=${partials[0]!.bytes}-`);
  assert.ok(resumed);
});

Deno.test("fetch: refuses up front when the declared size does not fit beside the reserve", async () => {
  await using f = await fixture({ diskReserveBytes: Number.MAX_SAFE_INTEGER / 2 });
  await using server = startBlobServer({ "/a": { body: DATA } });
  await rejectsFetch(
    f.fetcher.ensure({ sha256: HEX, urls: [server.url("/a")], size: DATA.length }),
    /not enough disk space in .*: need 0\.3 MiB plus the .* reserve/,
  );
  assert.equal(server.requests.length, 0);
});

Deno.test("fetch: concurrent requests for one hash share a single download", async () => {
  await using f = await fixture();
  await using server = startBlobServer({ "/a": { body: DATA, bytesPerSecond: 3_000_000 } });
  const seen: number[] = [];
  const [a, b] = await Promise.all([
    f.fetcher.ensure({ sha256: HEX, urls: [server.url("/a")] }),
    f.fetcher.ensure({ sha256: HEX, urls: [server.url("/a")] }, (p) => seen.push(p.bytes)),
  ]);
  assert.deepEqual(a, b);
  assert.equal(server.requests.length, 1);
  assert.ok(seen.length > 0, "the second caller gets progress too");
});

Deno.test("fetch: max_concurrent 1 runs downloads one after the other", async () => {
  await using f = await fixture({ maxConcurrent: 1 });
  const other = randomBytes(100_000);
  await using server = startBlobServer({
    "/a": { body: DATA, bytesPerSecond: 2_000_000 },
    "/b": { body: other, bytesPerSecond: 2_000_000 },
  });
  await Promise.all([
    f.fetcher.ensure({ sha256: HEX, urls: [server.url("/a")] }),
    f.fetcher.ensure({ sha256: sha256Hex(other), urls: [server.url("/b")] }),
  ]);
  const [first, second] = server.requests;
  assert.ok(second!.startedAt >= first!.endedAt!, "second started after the first ended");
});

Deno.test("fetch: the bandwidth limit holds the transfer to the configured rate", async () => {
  await using f = await fixture({ bandwidthLimit: 500_000 });
  await using server = startBlobServer({ "/a": { body: DATA } });
  const started = performance.now();
  await f.fetcher.ensure({ sha256: HEX, urls: [server.url("/a")] });
  const seconds = (performance.now() - started) / 1000;
  assert.ok(seconds >= 0.45, `300 kB at 500 kB/s took ${seconds.toFixed(2)} s`);
});

Deno.test("fetch: bad requests are clear errors", async () => {
  await using f = await fixture();
  const invalid = (pattern: RegExp) => (err: unknown) => {
    assert.ok(err instanceof BlobRequestInvalid, String(err));
    assert.equal(err.exitCode, 2);
    assert.match(err.message, pattern);
    return true;
  };
  await assert.rejects(
    f.fetcher.ensure({ sha256: HEX, urls: ["ftp://127.0.0.1/a"] }),
    invalid(/unsupported URL scheme "ftp:"/),
  );
  await assert.rejects(
    f.fetcher.ensure({ sha256: HEX, urls: ["not a url"] }),
    invalid(/"not a url" is not a URL/),
  );
  await assert.rejects(
    f.fetcher.ensure({ sha256: HEX, urls: [] }),
    invalid(/has no URL to fetch it from/),
  );
  await assert.rejects(f.fetcher.ensure({ sha256: "abc", urls: [] }), invalid(/is not a SHA-256/));
});

Deno.test("fetch: HTTPS verifies certificates; fetch.ca_file adds a trusted CA", async () => {
  await using server = startBlobServer({ "/a": { body: DATA } }, { tls: true });
  {
    await using f = await fixture({ retries: 0 });
    await rejectsFetch(
      f.fetcher.ensure({ sha256: HEX, urls: [server.url("/a")] }),
      /certificate|UnknownIssuer/i,
    );
  }
  const caPem = await Deno.readTextFile(
    new URL("../../tests/fixtures/tls/ca.pem", import.meta.url),
  );
  await using f = await fixture({ caPem });
  await f.fetcher.ensure({ sha256: HEX, urls: [server.url("/a")] });
  assert.deepEqual(await Deno.readFile(f.store.pathOf(HEX)), DATA);
});
