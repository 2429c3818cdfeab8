import assert from "node:assert/strict";
import { runLoam, startAgent, tempDir } from "./harness.ts";
import { randomBytes, sha256Hex, startBlobServer } from "../fixtures/blob_server.ts";

const DATA = randomBytes(3 * 1024 * 1024);
const HEX = sha256Hex(DATA);

Deno.test("loam fetch stores a verified blob, prints its path, and shows plain progress off a TTY", async () => {
  await using dir = await tempDir();
  await using server = startBlobServer({
    "/model.onnx": { body: DATA, bytesPerSecond: 6_000_000 },
  });
  const res = await runLoam([
    "fetch",
    server.url("/model.onnx"),
    "--sha256",
    `sha256:${HEX}`,
    "--size",
    String(DATA.length),
    "--data-dir",
    dir.path,
  ]);
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.stdout, `${dir.path}/blobs/sha256/${HEX}\n`);
  assert.deepEqual(await Deno.readFile(res.stdout.trim()), DATA);
  const lines = res.stderr.trim().split("\n");
  assert.ok(lines.length >= 2, res.stderr);
  for (const line of lines) {
    assert.match(line, /^fetch sha256:[0-9a-f]{12} \d+% [\d.]+\/3\.0 MiB [\d.]+ MiB\/s$/);
  }
  assert.match(lines.at(-1)!, / 100% 3\.0\/3\.0 MiB/);

  const again = await runLoam([
    "fetch",
    server.url("/model.onnx"),
    "--sha256",
    HEX,
    "--data-dir",
    dir.path,
  ]);
  assert.equal(again.code, 0);
  assert.equal(server.requests.length, 1, "already stored: no download");
});

Deno.test("loam fetch fails with exit 1 showing expected and actual hash; nothing is stored", async () => {
  await using dir = await tempDir();
  await using server = startBlobServer({ "/a": { body: DATA } });
  const wrong = "0".repeat(64);
  const res = await runLoam(["fetch", server.url("/a"), "--sha256", wrong, "--data-dir", dir.path]);
  assert.equal(res.code, 1);
  assert.match(
    res.stderr,
    new RegExp(
      `loam: cannot fetch sha256:${wrong}: .*hash mismatch: expected sha256:${wrong}, got sha256:${HEX}`,
    ),
  );
  assert.deepEqual([...Deno.readDirSync(`${dir.path}/blobs/sha256`)], []);
  assert.deepEqual([...Deno.readDirSync(`${dir.path}/blobs/partial`)], []);

  const notFound = await runLoam([
    "fetch",
    server.url("/nope"),
    "--sha256",
    HEX,
    "--data-dir",
    dir.path,
  ]);
  assert.equal(notFound.code, 1);
  assert.match(notFound.stderr, /\/nope: HTTP 404 Not Found/);
});

Deno.test("loam fetch rejects bad arguments with exit 2", async () => {
  await using dir = await tempDir();
  const cases: [string[], RegExp][] = [
    [["fetch", "ftp://127.0.0.1/x", "--sha256", HEX], /unsupported URL scheme "ftp:"/],
    [["fetch", "http://127.0.0.1:1/x"], /--sha256 <hex> is required/],
    [["fetch", "--sha256", HEX], /give at least one URL/],
    [["fetch", "http://127.0.0.1:1/x", "--sha256", "xyz"], /"xyz" is not a SHA-256/],
    [
      ["fetch", "http://127.0.0.1:1/x", "--sha256", HEX, "--size", "12MB"],
      /--size "12MB" is not a byte count/,
    ],
  ];
  for (const [args, pattern] of cases) {
    const res = await runLoam([...args, "--data-dir", dir.path]);
    assert.equal(res.code, 2, `${args.join(" ")}: ${res.stderr}`);
    assert.match(res.stderr, pattern);
  }
});

Deno.test("blobs ls/verify/gc and GET /v1/blobs show, check and clean the store", async () => {
  await using dir = await tempDir();
  const other = randomBytes(1000);
  const otherHex = sha256Hex(other);
  await using server = startBlobServer({ "/a": { body: DATA }, "/b": { body: other } });
  for (const [path, hex] of [["/a", HEX], ["/b", otherHex]]) {
    const res = await runLoam(["fetch", server.url(path), "--sha256", hex, "--data-dir", dir.path]);
    assert.equal(res.code, 0, res.stderr);
  }
  // a deployment of blob A (its record references it); without a runtime adapter it ends failed
  const agent = await startAgent(dir.path);
  try {
    const posted = await agent.request("/v1/deployments", {
      method: "POST",
      token: agent.adminToken(),
      body: JSON.stringify({
        directive_id: "d1",
        scope: { type: "broadcast" },
        artifact: {
          blob_hash: `sha256:${HEX}`,
          size_bytes: DATA.length,
          artifact_type: { type: "onnx_model" },
        },
      }),
    });
    assert.equal(posted.status, 202);
    await posted.body?.cancel();
    const unauth = await agent.request("/v1/blobs");
    assert.equal(unauth.status, 401);
    await unauth.body?.cancel();
    const listed = await (await agent.request("/v1/blobs", { token: agent.adminToken() })).json();
    assert.deepEqual(
      listed.blobs.map((
        b: { sha256: string; size_bytes: number; referenced_by: string[] },
      ) => [b.sha256, b.size_bytes, b.referenced_by]),
      [[HEX, DATA.length, ["d1"]], [otherHex, 1000, []]].sort((x, y) =>
        String(x[0]).localeCompare(String(y[0]))
      ),
    );
    assert.deepEqual(listed.partials, []);
  } finally {
    await agent.stop();
  }

  const ls = await runLoam(["blobs", "ls", "--data-dir", dir.path]);
  assert.match(ls.stdout, new RegExp(`^${HEX}\\s+3\\.0 MiB\\s+\\S+\\s+d1$`, "m"));
  assert.match(ls.stdout, new RegExp(`^${otherHex}\\s+0\\.0 MiB\\s+\\S+\\s+-$`, "m"));

  const ok = await runLoam(["blobs", "verify", "--data-dir", dir.path]);
  assert.equal(ok.code, 0);
  assert.match(ok.stdout, /^2 ok, 0 bad$/m);

  const blobPath = `${dir.path}/blobs/sha256/${otherHex}`;
  await Deno.chmod(blobPath, 0o644);
  await Deno.writeFile(blobPath, new Uint8Array(1000));
  const bad = await runLoam(["blobs", "verify", "--data-dir", dir.path]);
  assert.equal(bad.code, 1);
  assert.match(
    bad.stdout,
    new RegExp(
      `^BAD  ${otherHex} quarantined to ${dir.path}/blobs/quarantine/${otherHex}\\.\\d+$`,
      "m",
    ),
  );
  assert.match(bad.stdout, /^1 ok, 1 bad$/m);
  await assert.rejects(Deno.stat(blobPath), Deno.errors.NotFound);

  // fetch it again, then gc removes it (unreferenced) but keeps the referenced one
  await runLoam(["fetch", server.url("/b"), "--sha256", otherHex, "--data-dir", dir.path]);
  await Deno.writeFile(`${dir.path}/blobs/partial/${"c".repeat(64)}`, new Uint8Array(10));
  const dry = await runLoam(["blobs", "gc", "--dry-run", "--json", "--data-dir", dir.path]);
  const dryReport = JSON.parse(dry.stdout);
  assert.deepEqual(dryReport.removed_blobs.map((b: { sha256: string }) => b.sha256), [otherHex]);
  assert.deepEqual(dryReport.removed_partials, [], "a fresh partial is kept");
  assert.ok(await Deno.stat(`${dir.path}/blobs/sha256/${otherHex}`));
  const gc = await runLoam([
    "blobs",
    "gc",
    "--set",
    "blobs.partial_max_age_hours=0",
    "--data-dir",
    dir.path,
  ]);
  assert.equal(gc.code, 0, gc.stderr);
  assert.match(gc.stdout, /^removed 1 blobs and 1 partials, 0\.0 MiB; kept 1 referenced blobs$/m);
  assert.deepEqual([...Deno.readDirSync(`${dir.path}/blobs/sha256`)].map((e) => e.name), [HEX]);
  assert.deepEqual([...Deno.readDirSync(`${dir.path}/blobs/partial`)], []);

  await Deno.writeTextFile(`${dir.path}/deployments/broken.json`, "{");
  const refuse = await runLoam(["blobs", "gc", "--data-dir", dir.path]);
  assert.equal(refuse.code, 2);
  assert.match(refuse.stderr, /deployment record .*broken\.json is unreadable/);
  assert.deepEqual([...Deno.readDirSync(`${dir.path}/blobs/sha256`)].map((e) => e.name), [HEX]);
});

Deno.test("fetch.ca_file lets loam fetch trust a private CA for HTTPS sources", async () => {
  await using dir = await tempDir();
  await using server = startBlobServer({ "/a": { body: DATA } }, { tls: true });
  const ca = new URL("../fixtures/tls/ca.pem", import.meta.url).pathname;
  const base = ["fetch", server.url("/a"), "--sha256", HEX, "--data-dir", dir.path];
  const untrusted = await runLoam([...base, "--set", "fetch.retries=0"]);
  assert.equal(untrusted.code, 1);
  assert.match(untrusted.stderr, /invalid peer certificate: UnknownIssuer/);
  const trusted = await runLoam(base, { env: { LOAM_FETCH_CA_FILE: ca } });
  assert.equal(trusted.code, 0, trusted.stderr);
  const missing = await runLoam([...base, "--set", `fetch.ca_file=${dir.path}/none.pem`]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /fetch\.ca_file = ".*none\.pem": No such file/);
});
