import assert from "node:assert/strict";
import { join } from "node:path";
import denoConfig from "../deno.json" with { type: "json" };
import { compileArgs, denortCachePath, excludedPaths } from "../tasks/compile_plan.ts";
import { agentFlags } from "../tasks/permissions.ts";

const BUILD = new URL("../tasks/build.ts", import.meta.url).pathname;

/** A Deno cache dir holding the platform packages' folders (empty), as deno would lay them out. */
async function fakeCache(): Promise<string> {
  const dir = await Deno.makeTempDir();
  const registry = join(dir, "npm", "registry.npmjs.org");
  for (const pkg of ["linux-x64", "linux-x64-cuda", "linux-arm64", "mac-arm64-metal"]) {
    await Deno.mkdir(join(registry, "@node-llama-cpp", pkg, "3.21.1"), { recursive: true });
  }
  for (const sub of ["linux/x64", "linux/arm64", "darwin/arm64", "win32/x64"]) {
    await Deno.mkdir(join(registry, "onnxruntime-node", "1.30.0", "bin", "napi-v6", sub), {
      recursive: true,
    });
  }
  return dir;
}

Deno.test("each target compiles with the agent's permissions and only its own npm binaries", async () => {
  const dir = await fakeCache();
  try {
    const registry = join(dir, "npm", "registry.npmjs.org");
    const ort = join(registry, "onnxruntime-node", "1.30.0", "bin", "napi-v6");
    const llama = (p: string) => join(registry, "@node-llama-cpp", p, "3.21.1");

    const x64 = excludedPaths(dir, "x86_64-unknown-linux-gnu", false);
    assert.deepEqual(
      x64,
      [
        llama("linux-arm64"),
        llama("linux-x64-cuda"),
        llama("mac-arm64-metal"),
        join(ort, "darwin"),
        join(ort, "linux", "arm64"),
        join(ort, "win32"),
      ].sort(),
    );
    assert.ok(
      !excludedPaths(dir, "x86_64-unknown-linux-gnu", true).includes(llama("linux-x64-cuda")),
    );
    const arm = excludedPaths(dir, "aarch64-unknown-linux-gnu", false);
    assert.ok(arm.includes(llama("linux-x64")) && arm.includes(join(ort, "linux", "x64")));
    assert.ok(!arm.includes(llama("linux-arm64")));

    const args = compileArgs("aarch64-unknown-linux-gnu", "dist/out", arm);
    assert.deepEqual(args.slice(0, 4), [
      "compile",
      "--target",
      "aarch64-unknown-linux-gnu",
      "--self-extracting",
    ]);
    assert.ok(args.includes("--exclude-unused-npm"));
    const flags = agentFlags();
    const compiled = args.filter((a) => a.startsWith("--allow-") || a.startsWith("--v8-flags="));
    assert.deepEqual(compiled, flags);
    assert.ok(compiled.includes("--v8-flags=--max-semi-space-size=1")); // the idle-memory setting
    assert.ok(!args.includes("-A") && !args.includes("--allow-all"));
    assert.equal(args.at(-1), "main.ts");
    assert.equal(args.filter((a) => a === "--exclude").length, arm.length);
    // `deno task start` runs with the same list
    assert.ok(denoConfig.tasks.loam.includes(flags.join(" ")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("without a runtime base the compile kind stops with exit 3, names the fixes, writes nothing", async () => {
  const cache = await Deno.makeTempDir();
  const out = join(await Deno.makeTempDir(), "dist");
  try {
    const run = await new Deno.Command("deno", {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-env=DENO_DIR,HOME,DENORT_BIN,LOAM_BUILD_CACHE,XDG_CACHE_HOME",
        "--allow-run=deno,npm,tar,sh,cp",
        BUILD,
        "--kind",
        "compile",
        "--out-dir",
        out,
      ],
      env: { DENO_DIR: cache },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(run.stderr);
    assert.equal(run.code, 3, stderr);
    assert.match(stderr, /no Deno runtime base \(denort [\d.]+\) for x86_64-unknown-linux-gnu/);
    assert.ok(stderr.includes(denortCachePath(cache, "x86_64-unknown-linux-gnu")), stderr);
    assert.match(stderr, /DENORT_BIN=/);
    assert.match(stderr, /Nothing was written to dist\//);
    assert.equal(await Deno.stat(out).then(() => true, () => false), false);
  } finally {
    await Deno.remove(cache, { recursive: true });
    await Deno.remove(join(out, ".."), { recursive: true });
  }
});
