import assert from "node:assert/strict";
import { type AgentProcess, startAgent, tempDir } from "./harness.ts";
import { eventually } from "./mesh_helpers.ts";
import { sha256Hex, startBlobServer } from "../fixtures/blob_server.ts";
import { type TarEntry, tarGz } from "../fixtures/tarball.ts";

async function deployPackage(
  agent: AgentProcess,
  url: string,
  body: Uint8Array,
  id: string,
  target: string,
  options: Record<string, unknown> = {},
) {
  const res = await agent.request("/v1/deployments", {
    method: "POST",
    token: agent.adminToken(),
    body: JSON.stringify({
      options,
      directive_id: id,
      scope: { type: "broadcast" },
      artifact: {
        blob_hash: `sha256:${sha256Hex(body)}`,
        size_bytes: body.length,
        urls: [url],
        name: "app-config",
        artifact_type: { type: "config_package", target_path: target },
      },
    }),
  });
  assert.equal(res.status, 202, await res.text());
  return await eventually(`${id} final`, async () => {
    const r = await (await agent.request(`/v1/deployments/${id}`, { token: agent.adminToken() }))
      .json();
    return ["active", "failed"].includes(r.state) ? r : undefined;
  });
}

async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string, prefix: string) => {
    for await (const e of Deno.readDir(d)) {
      if (e.isDirectory) await walk(`${d}/${e.name}`, `${prefix}${e.name}/`);
      else out[`${prefix}${e.name}`] = await Deno.readTextFile(`${d}/${e.name}`);
    }
  };
  await walk(dir, "");
  return out;
}

Deno.test("config packages: activated atomically, replaced by a new version, rolled back on DELETE", async () => {
  await using dir = await tempDir();
  const target = `${dir.path}/etc/app`;
  const v1 = await tarGz([{ name: "app.conf", content: "v=1\n" }, {
    name: "conf.d/",
    type: "directory",
  }]);
  const v2 = await tarGz([{ name: "app.conf", content: "v=2\n" }, {
    name: "conf.d/extra.conf",
    content: "x\n",
  }]);
  await using http = startBlobServer({ "/v1.tgz": { body: v1 }, "/v2.tgz": { body: v2 } });
  const agent = await startAgent(`${dir.path}/data`);
  try {
    const first = await deployPackage(agent, http.url("/v1.tgz"), v1, "cfg-1", target);
    assert.equal(first.state, "active", first.error_message);
    assert.equal(first.instance_id, "cfg-cfg-1");
    assert.deepEqual(await tree(target), { "app.conf": "v=1\n" });
    const second = await deployPackage(agent, http.url("/v2.tgz"), v2, "cfg-2", target, {
      replace_existing: true,
    });
    assert.equal(second.state, "active", second.error_message);
    const first2 =
      await (await agent.request("/v1/deployments/cfg-1", { token: agent.adminToken() })).json();
    assert.equal(first2.state, "rolled_back");
    assert.equal(first2.error_message, "replaced by cfg-2");
    assert.deepEqual(await tree(target), { "app.conf": "v=2\n", "conf.d/extra.conf": "x\n" });

    const res = await agent.request("/v1/deployments/cfg-2", {
      method: "DELETE",
      token: agent.adminToken(),
    });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).state, "rolled_back");
    assert.deepEqual(await tree(target), { "app.conf": "v=1\n" }, "the previous version is back");
    const again = await agent.request("/v1/deployments/cfg-2", {
      method: "DELETE",
      token: agent.adminToken(),
    });
    // a second DELETE removes the rolled-back record; a third finds nothing
    assert.equal(again.status, 200);
    assert.deepEqual(await again.json(), {
      outcome: "removed",
      directive_id: "cfg-2",
      state: "rolled_back",
    });
    const gone = await agent.request("/v1/deployments/cfg-2", { token: agent.adminToken() });
    assert.equal(gone.status, 404);
    await gone.body?.cancel();
    assert.deepEqual(await tree(target), { "app.conf": "v=1\n" }, "removing undoes nothing more");
    const leftovers = [...Deno.readDirSync(`${dir.path}/etc`)].map((e) => e.name).filter((n) =>
      n.includes("staging")
    );
    assert.deepEqual(leftovers, []);
  } finally {
    await agent.stop();
  }
});

Deno.test("config packages with .., absolute paths or links are rejected; the target is untouched", async () => {
  await using dir = await tempDir();
  const target = `${dir.path}/etc/app`;
  await Deno.mkdir(target, { recursive: true });
  await Deno.writeTextFile(`${target}/app.conf`, "original\n");
  const hostile: [string, TarEntry[], RegExp][] = [
    [
      "dotdot",
      [{ name: "ok.conf", content: "a" }, { name: "../escape.conf", content: "b" }],
      /climbs out of the target/,
    ],
    ["absolute", [{ name: "/etc/passwd", content: "root" }], /has an absolute path/],
    [
      "symlink",
      [{ name: "link", type: "symlink", linkname: "/etc/passwd" }],
      /is a symlink: config packages hold only files/,
    ],
  ];
  const routes = Object.fromEntries(
    await Promise.all(
      hostile.map(async ([name, entries]) => [`/${name}`, { body: await tarGz(entries) }]),
    ),
  );
  await using http = startBlobServer(routes);
  const agent = await startAgent(`${dir.path}/data`);
  try {
    for (const [name, , pattern] of hostile) {
      const body = http.routes[`/${name}`]!.body as Uint8Array;
      const result = await deployPackage(agent, http.url(`/${name}`), body, `bad-${name}`, target);
      assert.equal(result.state, "failed", name);
      assert.match(result.error_message, /^config package rejected: /);
      assert.match(result.error_message, pattern);
    }
    assert.deepEqual(await tree(target), { "app.conf": "original\n" });
    assert.deepEqual([...Deno.readDirSync(`${dir.path}/etc`)].map((e) => e.name), ["app"]);
    await assert.rejects(Deno.stat(`${dir.path}/escape.conf`), Deno.errors.NotFound);
  } finally {
    await agent.stop();
  }
});

Deno.test("auto_activate=false stops at ready; POST .../activate activates it", async () => {
  await using dir = await tempDir();
  const target = `${dir.path}/etc/app`;
  const pkg = await tarGz([{ name: "app.conf", content: "staged\n" }]);
  await using http = startBlobServer({ "/pkg.tgz": { body: pkg } });
  const agent = await startAgent(`${dir.path}/data`);
  try {
    const res = await agent.request("/v1/deployments", {
      method: "POST",
      token: agent.adminToken(),
      body: JSON.stringify({
        directive_id: "staged-1",
        scope: { type: "broadcast" },
        options: { auto_activate: false },
        artifact: {
          blob_hash: `sha256:${sha256Hex(pkg)}`,
          size_bytes: pkg.length,
          urls: [http.url("/pkg.tgz")],
          artifact_type: { type: "config_package", target_path: target },
        },
      }),
    });
    assert.equal(res.status, 202);
    await res.body?.cancel();
    const ready = await eventually("ready", async () => {
      const r =
        await (await agent.request("/v1/deployments/staged-1", { token: agent.adminToken() }))
          .json();
      return r.state === "ready" ? r : undefined;
    });
    assert.deepEqual(ready.history.map((h: { state: string }) => h.state), [
      "pending",
      "downloading",
      "ready",
    ]);
    await assert.rejects(Deno.stat(target), Deno.errors.NotFound, "nothing applied yet");

    const activate = () =>
      agent.request("/v1/deployments/staged-1/activate", {
        method: "POST",
        token: agent.adminToken(),
      });
    const activated = await activate();
    assert.equal(activated.status, 200);
    assert.equal((await activated.json()).state, "active");
    assert.deepEqual(await tree(target), { "app.conf": "staged\n" });
    const twice = await activate();
    assert.equal(twice.status, 409);
    assert.equal((await twice.json()).error.code, "not_ready");
  } finally {
    await agent.stop();
  }
});
