import assert from "node:assert/strict";
import { ConfigPackageAdapter } from "./config_package.ts";
import { testDirective } from "../../tests/fixtures/directive.ts";
import { tarGz } from "../../tests/fixtures/tarball.ts";

Deno.test("config package: an activation clears the staging a crashed one left beside the target", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const target = `${dir}/etc/app`;
    await Deno.mkdir(`${dir}/etc/app.loam-staging-1-dead/sub`, { recursive: true });
    await Deno.mkdir(`${dir}/etc/other.loam-staging-1-keep`);
    await Deno.writeFile(
      `${dir}/pkg.tar.gz`,
      await tarGz([{ name: "app.conf", content: "v=1\n" }]),
    );
    const directive = testDirective("cfg", { type: "config_package", target_path: target });
    const adapter = new ConfigPackageAdapter(`${dir}/instances`);
    await adapter.activate(directive, `${dir}/pkg.tar.gz`, new AbortController().signal);
    assert.equal(await Deno.readTextFile(`${target}/app.conf`), "v=1\n");
    const names = [...Deno.readDirSync(`${dir}/etc`)].map((e) => e.name).sort();
    assert.deepEqual(
      names,
      ["app", "other.loam-staging-1-keep"],
      "another target's is not touched",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("config package: when its record cannot be written, the target keeps its old content", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const target = `${dir}/etc/app`;
    await Deno.mkdir(target, { recursive: true });
    await Deno.writeTextFile(`${target}/app.conf`, "old\n");
    await Deno.writeFile(
      `${dir}/pkg.tar.gz`,
      await tarGz([{ name: "app.conf", content: "v=2\n" }]),
    );
    // a file where the instances dir should be: the record's write fails, as on a full disk
    await Deno.writeTextFile(`${dir}/instances`, "");
    const adapter = new ConfigPackageAdapter(`${dir}/instances`);
    const directive = testDirective("cfg", { type: "config_package", target_path: target });
    await assert.rejects(
      adapter.activate(directive, `${dir}/pkg.tar.gz`, new AbortController().signal),
    );
    assert.equal(await Deno.readTextFile(`${target}/app.conf`), "old\n");
    assert.deepEqual([...Deno.readDirSync(`${dir}/etc`)].map((e) => e.name), ["app"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
