import assert from "node:assert/strict";
import { checkDataDir, dataPaths, ensureDataDir, openDataDir } from "./paths.ts";
import { UserError } from "./errors.ts";

async function modeOf(path: string): Promise<number> {
  return (await Deno.stat(path)).mode! & 0o777;
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "loam-paths-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("openDataDir creates what is missing and keeps the modes the agent set", async () => {
  await withTempDir(async (dir) => {
    const paths = dataPaths(`${dir}/data`);
    await openDataDir(paths);
    assert.equal(await modeOf(paths.root), 0o700);
    assert.equal(await modeOf(paths.apiDir), 0o700);

    await ensureDataDir(paths, true);
    assert.equal(await modeOf(paths.root), 0o711);
    assert.equal(await modeOf(paths.instances), 0o711);
    await openDataDir(paths);
    assert.equal(await modeOf(paths.root), 0o711);
    assert.equal(await modeOf(paths.instances), 0o711);

    await ensureDataDir(paths, false);
    assert.equal(await modeOf(paths.root), 0o700, "the agent still sets its modes at start");
  });
});

Deno.test("an unusable data dir names the path and what is wrong with it", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "");
    const cases: [string, RegExp][] = [
      [`${dir}/file/data`, new RegExp(`: ${dir}/file is a file, not a directory \\(`)],
      [`${dir}/file`, new RegExp(`: ${dir}/file is a file, not a directory \\(`)],
      [
        "/dev/shm/loam-paths-test",
        /: \/dev\/shm\/loam-paths-test(\/api)? is under \/dev, \/proc or \/sys, which loam may not/,
      ],
    ];
    for (const [root, why] of cases) {
      for (const prepare of [openDataDir, ensureDataDir, checkDataDir]) {
        await assert.rejects(prepare(dataPaths(root)), (err: unknown) => {
          assert.ok(err instanceof UserError);
          assert.ok(err.message.startsWith(`data dir ${root} is not usable: `), err.message);
          assert.match(err.message, why);
          assert.doesNotMatch(err.message, /allow-all/);
          return true;
        });
      }
    }
  });
});

Deno.test("checkDataDir accepts a data dir that does not exist yet, and creates nothing", async () => {
  await withTempDir(async (dir) => {
    await checkDataDir(dataPaths(`${dir}/later`));
    await assert.rejects(Deno.stat(`${dir}/later`), Deno.errors.NotFound);
  });
});
