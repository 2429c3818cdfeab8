/**
 * The shipped file on a bare box: `deno task build --kind sfx` for this machine's target (or
 * `LOAM_TEST_BINARY`), run with Deno and every cache out of reach (a private mount namespace
 * hides the npm deno package and $HOME/.cache; the environment is PATH=/usr/bin:/bin and an
 * empty HOME). Needs root for the namespace; skips with the reason otherwise.
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import denoConfig from "../../deno.json" with { type: "json" };
import { smallDisk } from "../fixtures/tmpfs.ts";
import { shippedFile, TEST_VERSION } from "../fixtures/shipped_file.ts";
import { serveSmokeModels, smokePass, WORKLOAD_CHECKS } from "../../tasks/smoke_arm64_agent.ts";
import { agentFlags } from "../../tasks/permissions.ts";
import {
  extractions,
  type FileEnv,
  killedExtractionProblems,
  runFile,
  truncatedCopyProblems,
} from "../../tasks/sfx_checks.ts";

const TARGET = Deno.build.target as "x86_64-unknown-linux-gnu";

async function commandWorks(cmd: string, args: string[]): Promise<boolean> {
  try {
    return (await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output()).success;
  } catch {
    return false;
  }
}

const skipReason = Deno.uid() !== 0
  ? "needs root for a private mount namespace that hides Deno"
  : TARGET !== "x86_64-unknown-linux-gnu"
  ? `builds the x86_64 file; this host is ${TARGET}`
  : !await commandWorks("sh", ["-c", "unshare -m true"])
  ? "unshare -m does not work here"
  : undefined;
if (skipReason) console.log(`SKIP shipped-file tests: ${skipReason}`);

const work = await Deno.makeTempDir({ prefix: "loam-shipped-" });
await Deno.chmod(work, 0o711);

/**
 * A wrapper that runs `file` as on a bare box: in a private mount namespace the npm deno package
 * and $HOME/.cache are empty tmpfs, `deno` is checked to be unreachable, and the environment is
 * PATH, an empty HOME and the LOAM_* variables the test passes.
 */
async function bareWrapper(file: string): Promise<string> {
  const denoPackage = join(
    new TextDecoder().decode(
      (await new Deno.Command("sh", { args: ["-c", "npm root -g"], stdout: "piped" }).output())
        .stdout,
    ).trim(),
    "deno",
  );
  const home = join(work, "empty-home");
  await Deno.mkdir(home, { recursive: true });
  const cache = join(Deno.env.get("HOME") ?? "/root", ".cache");
  const wrapper = join(work, "bare.sh");
  await Deno.writeTextFile(
    wrapper,
    `#!/bin/sh
exec unshare -m sh -c '
  mount --make-rprivate / && mount -t tmpfs tmpfs "$1" || exit 97
  [ -d "$2" ] && { mount -t tmpfs tmpfs "$2" || exit 97; }
  if PATH=/usr/bin:/bin command -v deno >/dev/null 2>&1; then echo "bare: deno is reachable" >&2; exit 97; fi
  shift 2
  exec env -i HOME="${home}" PATH=/usr/bin:/bin $(env | grep "^LOAM_") "$@"
' bare "${denoPackage}" "${cache}" "${file}" "$@"
`,
  );
  await Deno.chmod(wrapper, 0o755);
  return wrapper;
}

const file = skipReason ? "" : await shippedFile();
const bare = skipReason ? "" : await bareWrapper(file);

/** How the file runs outside the namespace: HOME is the work dir, and `runtimeDir`. */
const at = (runtimeDir: string): FileEnv => ({ home: work, runtimeDir });

Deno.test({
  name: "the file says what it holds without extracting, and refuses a damaged copy in one line",
  ignore: skipReason !== undefined,
  async fn() {
    const runtime = join(work, "runtime-damaged");
    const info = JSON.parse((await runFile(file, ["--payload-info"], at(runtime))).stdout);
    assert.equal(info.kind, "sfx");
    assert.equal(info.target, TARGET);
    assert.match(info.payload_sha256, /^[0-9a-f]{64}$/);
    assert.equal(info.payload_bytes + info.header_bytes, (await Deno.stat(file)).size);
    if (!Deno.env.get("LOAM_TEST_BINARY")) assert.equal(info.version, TEST_VERSION);
    await assert.rejects(Deno.stat(runtime), Deno.errors.NotFound);

    assert.deepEqual(await truncatedCopyProblems(file, join(work, "truncated"), at(runtime)), []);

    const bytes = await Deno.readFile(file);
    const corrupted = join(work, "corrupted");
    const changed = bytes.slice();
    changed[changed.length - 1_000_000]! ^= 0xff;
    await Deno.writeFile(corrupted, changed, { mode: 0o755 });
    const bad = await runFile(corrupted, ["version"], at(runtime));
    assert.equal(bad.code, 1);
    assert.match(
      bad.stderr,
      /is damaged: payload hash mismatch \(expected sha256:[0-9a-f]{64}, got/,
    );
    // half-extracted code never runs: nothing was extracted at all
    const left = await Array.fromAsync(Deno.readDir(runtime)).catch(() => []);
    assert.deepEqual(left.filter((e) => !e.name.startsWith(".")), []);
  },
});

Deno.test({
  name: "killed with -9 during its first extraction, the next run recovers and verifies",
  ignore: skipReason !== undefined,
  async fn() {
    const runtime = join(work, "runtime-killed");
    assert.deepEqual((await killedExtractionProblems(file, TARGET, at(runtime))).problems, []);

    // a damaged extraction (a file gone) is noticed and redone
    const [dir] = await extractions(runtime);
    await Deno.remove(join(dir, "loam.js"));
    const redone = await runFile(file, ["version", "--verify"], at(runtime));
    assert.equal(redone.code, 0, redone.stderr);
    assert.match(redone.stderr, /is incomplete or damaged; extracting again/);
    // and --verify names a file whose content changed
    await Deno.writeTextFile(join(dir, "import_map.json"), "{}");
    const verify = await runFile(file, ["version", "--verify"], at(runtime));
    assert.equal(verify.code, 1);
    assert.match(verify.stderr, /import_map\.json: content differs/);
  },
});

Deno.test({
  name: "three first runs at once all succeed, and leave one extraction",
  ignore: skipReason !== undefined,
  async fn() {
    const runtime = join(work, "runtime-racing");
    const runs = await Promise.all([0, 1, 2].map(() => runFile(file, ["version"], at(runtime))));
    for (const run of runs) assert.equal(run.code, 0, run.stderr);
    const entries = (await Array.fromAsync(Deno.readDir(runtime))).map((e) => e.name);
    assert.deepEqual(entries.filter((n) => !/^[0-9a-f]{64}$/.test(n)), [], entries.join(" "));
    assert.equal(entries.length, 1);
    assert.equal((await runFile(file, ["version", "--verify"], at(runtime))).code, 0);
  },
});

Deno.test({
  name: "a disk too full to extract on fails in one line and leaves what was there",
  ignore: skipReason !== undefined,
  async fn() {
    await using disk = await smallDisk("64m");
    const earlier = join(disk.path, "f".repeat(64)); // another version's complete runtime
    await Deno.mkdir(earlier);
    await Deno.writeTextFile(join(earlier, ".loam-extracted"), "f".repeat(64) + "\n");
    const res = await runFile(file, ["version"], at(disk.path));
    assert.equal(res.code, 1);
    assert.equal(res.stderr.trim().split("\n").length, 1, res.stderr);
    assert.match(
      res.stderr,
      /not enough disk space in .* to extract: needs \d+ MiB, \d+ MiB free .*previous version, if any, is untouched/,
    );
    const entries = (await Array.fromAsync(Deno.readDir(disk.path))).map((e) => e.name);
    assert.deepEqual(entries, ["f".repeat(64)], "no half-extracted runtime is left");
  },
});

Deno.test({
  name:
    "with Deno hidden, the file runs the agent: models answer as from source, programs, configs and WASM deploy",
  ignore: skipReason !== undefined,
  async fn() {
    const runtime = join(work, "runtime-bare");
    await using models = await serveSmokeModels();
    const spec = { models, gguf: true, timeoutS: 90 };
    const fromSource = await smokePass({
      ...spec,
      workloads: false,
      command: "deno",
      args: ["run", ...agentFlags(), new URL("../../main.ts", import.meta.url).pathname],
      env: {},
    });
    const shipped = await smokePass({
      ...spec,
      workloads: true,
      command: "sh",
      args: [bare],
      env: { LOAM_RUNTIME_DIR: runtime },
    });
    if (!Deno.env.get("LOAM_TEST_BINARY")) assert.equal(shipped.version, TEST_VERSION);
    assert.deepEqual(shipped.onnxOutputs, fromSource.onnxOutputs);
    assert.equal(shipped.ggufText, fromSource.ggufText);
    assert.equal(shipped.onnxProvider, "cpu");
    // the program ran, the config file holds v=1, the module printed its greeting and argv
    assert.deepEqual(shipped.workloads, WORKLOAD_CHECKS);
  },
});

/** The end-to-end files run a second time against the shipped file (mesh, deploy, inference, ...). */
const SHIPPED_SUITE = [
  "mesh_test.ts",
  "fleet_key_test.ts",
  "mesh_limits_test.ts",
  "mesh_lan_test.ts",
  "deploy_test.ts",
  "deploy_cancel_test.ts",
  "onnx_test.ts",
  "gguf_test.ts",
  "container_test.ts",
  "wasm_test.ts",
  "native_binary_test.ts",
  "config_package_test.ts",
  "sd_notify_test.ts",
  "cli_test.ts",
  "console_test.ts",
  "registry_test.ts",
  "fleet_inference_test.ts",
];

Deno.test({
  name:
    "the end-to-end suite for mesh, deploy, inference, containers and WASM passes against the shipped file",
  ignore: skipReason !== undefined || Deno.env.get("LOAM_TEST_BINARY") !== undefined,
  async fn() {
    // the test task's own flags: everything after "deno test"
    const task = denoConfig.tasks.test;
    const flags = task.slice(task.indexOf("deno test ") + "deno test ".length).split(/\s+/);
    const here = new URL(".", import.meta.url).pathname;
    const res = await new Deno.Command("deno", {
      args: ["test", ...flags, ...SHIPPED_SUITE.map((name) => join(here, name))],
      clearEnv: true,
      env: {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        HOME: Deno.env.get("HOME") ?? "/root",
        LOAM_TEST_BINARY: file,
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    // deno-lint-ignore no-control-regex
    const out = new TextDecoder().decode(res.stdout).replace(/\x1b\[[0-9;]*m/g, "");
    // without Deno's "ok |" prefix: the outer run's summary is the one CI reads
    const summary = out.match(/(?:ok|FAILED) \| (\d+ passed.*)$/m)?.[1] ?? "no summary";
    console.log(`  against ${file}: ${summary}`);
    assert.ok(
      res.success,
      `${summary}\n${out.split("\n").filter((l) => /FAILED|Error/.test(l)).join("\n")}`,
    );
  },
});

globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(work, { recursive: true });
  } catch {
    // a mount may still be busy; the temp dir goes with the machine
  }
});
