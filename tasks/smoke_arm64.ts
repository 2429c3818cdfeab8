/**
 * `deno task smoke:arm64`: runs the agent as aarch64 code (the arm64 Deno and the arm64 npm
 * binaries under qemu user-mode emulation, with the production permission list), deploys and
 * runs the Silero VAD ONNX model and a tiny GGUF through the local API, does the same natively
 * on x86_64, and compares: GGUF greedy text exactly, ONNX outputs within 1e-5. With binfmt it
 * runs the built aarch64 file and holds it to the x86_64 file's tests too: a first extraction
 * killed with -9 recovers, a truncated copy is refused, and a native program, a config package
 * and a WASM module deploy and do their work (also on x86_64, compared). The kit (qemu,
 * sysroot, arm64 Deno, arm64 npm packages) is cached under `$LOAM_ARM64_CACHE` (default
 * `$XDG_CACHE_HOME/loam-arm64`). Exit 0: passed, or SKIP with the reason printed; 1: failed.
 * @module
 */
import denoConfig from "../deno.json" with { type: "json" };
import { agentFlags } from "./permissions.ts";
import { fileNameFor } from "./compile_plan.ts";
import { type Binfmt, cacheRoot, ensureKit, kitBlocker, setUpBinfmt } from "./smoke_arm64_setup.ts";
import {
  serveSmokeModels,
  smokePass,
  type SmokeResult,
  WORKLOAD_CHECKS,
} from "./smoke_arm64_agent.ts";
import { type FileEnv, killedExtractionProblems, truncatedCopyProblems } from "./sfx_checks.ts";

const ONNX_TOLERANCE = 1e-5;
const PROJECT = new URL("..", import.meta.url).pathname;
const MAIN = new URL("../main.ts", import.meta.url).pathname;

const secs = (ms: number | undefined) => ms === undefined ? "-" : `${(ms / 1000).toFixed(1)} s`;

/** Mismatches between the two passes (empty when they agree). */
function compare(arm: SmokeResult, x86: SmokeResult): string[] {
  const problems: string[] = [];
  if (arm.arch !== "aarch64") problems.push(`arm64 agent reports arch ${arm.arch}`);
  if (x86.arch !== "x86_64") problems.push(`x86_64 agent reports arch ${x86.arch}`);
  const names = new Set([...Object.keys(arm.onnxOutputs), ...Object.keys(x86.onnxOutputs)]);
  for (const name of names) {
    const a = arm.onnxOutputs[name] ?? [];
    const b = x86.onnxOutputs[name] ?? [];
    if (a.length !== b.length) {
      problems.push(`ONNX output ${name}: ${a.length} values vs ${b.length}`);
      continue;
    }
    const worst = a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
    if (!(worst <= ONNX_TOLERANCE)) problems.push(`ONNX output ${name} differs by ${worst}`);
  }
  if (arm.ggufText !== x86.ggufText) {
    problems.push(`GGUF text differs:\n  arm64:  ${arm.ggufText}\n  x86_64: ${x86.ggufText}`);
  }
  for (const [name, pass] of [["arm64", arm], ["x86_64", x86]] as const) {
    if (pass.workloads && JSON.stringify(pass.workloads) !== JSON.stringify(WORKLOAD_CHECKS)) {
      const [seen, expected] = [pass.workloads.join(", "), WORKLOAD_CHECKS.join(", ")];
      problems.push(`${name} workloads: [${seen}], not [${expected}]`);
    }
  }
  if (JSON.stringify(arm.workloads) !== JSON.stringify(x86.workloads)) {
    const [a, b] = [arm.workloads?.join(", ") ?? "skipped", x86.workloads?.join(", ") ?? "skipped"];
    problems.push(`workloads differ: arm64 [${a}], x86_64 [${b}]`);
  }
  return problems;
}

function maxDiff(arm: SmokeResult, x86: SmokeResult): number {
  return Math.max(
    0,
    ...Object.entries(arm.onnxOutputs).flatMap(([k, a]) =>
      a.map((v, i) => Math.abs(v - (x86.onnxOutputs[k]?.[i] ?? NaN)))
    ),
  );
}

const TARGET = "aarch64-unknown-linux-gnu";

/** `deno task build --target aarch64-unknown-linux-gnu --kind sfx` into `dir`; its path. */
async function buildArm64File(dir: string): Promise<string> {
  const flags = denoConfig.tasks.build.split(/\s+/).slice(2); // after "deno run"
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, "--target", TARGET, "--kind", "sfx", "--out-dir", dir],
    cwd: PROJECT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`building the aarch64 file failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
  return `${dir}/${fileNameFor(TARGET)}`;
}

async function main(): Promise<number> {
  const total = performance.now();
  const root = cacheRoot();
  const blocker = kitBlocker(root);
  if (blocker) {
    console.log(`SKIP smoke:arm64: ${blocker}`);
    return 0;
  }
  console.log(`arm64 kit cache: ${root}`);
  const setupStart = performance.now();
  const kit = await ensureKit(root, PROJECT);
  const setupMs = performance.now() - setupStart;
  console.log(`qemu: ${kit.qemuVersion}`);
  console.log(
    `arm64 Deno ${kit.denoVersion}` +
      (kit.denoVersion === Deno.version.deno
        ? ""
        : ` (the project pins ${Deno.version.deno}, which npm does not publish for arm64)`),
  );
  const binfmt: Binfmt = await setUpBinfmt(kit);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => binfmt.undo().finally(() => Deno.exit(130)));
  }
  console.log(`binfmt: ${binfmt.note}`);
  if (!binfmt.ok) {
    console.log(
      "SKIP the built file, GGUF and workloads: node-llama-cpp and the WASM runner start arm64 " +
        "child processes",
    );
  }

  await using models = await serveSmokeModels();
  const config = `--config=${PROJECT}deno.json`;
  const permissions = [config, ...agentFlags(), "--no-check"];
  const qemuEnv = { QEMU_LD_PREFIX: kit.sysroot, QEMU_CPU: "cortex-a76" };
  let arm: SmokeResult;
  let how: string;
  // what the built file's own checks found wrong (kill -9 recovery, a truncated copy)
  const fileProblems: string[] = [];
  let recoveryMs: number | undefined;
  const work = await Deno.makeTempDir({ prefix: "loam-smoke-arm64-file-" });
  try {
    if (binfmt.ok) {
      // the shipped file: its sh header runs on the host, and execs the arm64 Deno it extracts
      const file = await buildArm64File(work);
      how = `the built file ${file}`;
      const at = (runtime: string): FileEnv => ({
        home: work,
        runtimeDir: `${work}/${runtime}`,
        env: qemuEnv,
      });
      const killed = await killedExtractionProblems(file, TARGET, at("runtime-killed"));
      recoveryMs = killed.recoveryMs;
      fileProblems.push(
        ...killed.problems,
        ...await truncatedCopyProblems(file, `${work}/truncated`, at("runtime-truncated")),
      );
      arm = await smokePass({
        command: "sh",
        args: [file],
        env: { ...qemuEnv, LOAM_RUNTIME_DIR: `${work}/runtime` },
        models,
        gguf: true,
        workloads: true,
        timeoutS: 240,
      });
    } else {
      how = "the arm64 Deno under qemu on the source (no binfmt, so not the built file)";
      arm = await smokePass({
        command: kit.qemu,
        args: [kit.deno, "run", "--cached-only", ...permissions, MAIN],
        env: { ...qemuEnv, DENO_DIR: kit.denoDir, DENO_NO_UPDATE_CHECK: "1" },
        models,
        gguf: false,
        workloads: false, // the WASM runner is an arm64 child: without binfmt it cannot start
        timeoutS: 180,
      });
    }
  } finally {
    await binfmt.undo();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
  console.log(`aarch64 agent: ${how}`);
  const hostDenoDir = Deno.env.get("DENO_DIR");
  const x86 = await smokePass({
    command: Deno.execPath(),
    args: ["run", ...permissions, MAIN],
    env: hostDenoDir ? { DENO_DIR: hostDenoDir } : {},
    models,
    gguf: binfmt.ok,
    workloads: binfmt.ok,
    timeoutS: 60,
  });

  const rows: [string, string, string][] = [
    ["setup (kit)", secs(setupMs), ""],
    ["start to /readyz", secs(arm.readyMs), secs(x86.readyMs)],
    ["ONNX deploy + infer", secs(arm.onnxMs), secs(x86.onnxMs)],
    ["GGUF deploy + infer", secs(arm.ggufMs), secs(x86.ggufMs)],
    ["workloads deploy", secs(arm.workloadsMs), secs(x86.workloadsMs)],
    ["kill -9, run again", secs(recoveryMs), ""],
  ];
  console.log(`\n${"".padEnd(22)}${"aarch64 (qemu)".padEnd(16)}x86_64`);
  for (const [name, a, b] of rows) console.log(`${name.padEnd(22)}${a.padEnd(16)}${b}`);
  console.log(`${"total".padEnd(22)}${secs(performance.now() - total)}`);
  console.log(`\nhardware probe, aarch64: ${arm.hardware}`);
  console.log(`hardware probe, x86_64:  ${x86.hardware}`);
  console.log(`ONNX provider: ${arm.onnxProvider} | ${x86.onnxProvider}`);
  console.log(`VAD speech probability: ${arm.onnxOutputs.output} | ${x86.onnxOutputs.output}`);
  console.log(`ONNX max |diff|: ${maxDiff(arm, x86)} (tolerance ${ONNX_TOLERANCE})`);
  console.log(`GGUF text: ${arm.ggufText ?? "(skipped)"}`);
  console.log(`workloads: ${arm.workloads?.join(", ") ?? "(skipped)"}`);
  if (recoveryMs !== undefined && fileProblems.length === 0) {
    console.log(
      "built file: recovers from kill -9 in its first extraction; refuses a truncated copy",
    );
  }
  for (const line of arm.otherStderr.filter((l) => !x86.otherStderr.includes(l))) {
    console.log(`aarch64-only stderr: ${line}`);
  }

  const problems = [...fileProblems, ...compare(arm, x86)];
  if (problems.length > 0) {
    console.log(`\nFAIL smoke:arm64:\n${problems.join("\n")}`);
    return 1;
  }
  console.log(
    binfmt.ok
      ? "\nPASS smoke:arm64"
      : "\nPASS smoke:arm64 (ONNX only; GGUF, workloads, file checks skipped)",
  );
  return 0;
}

try {
  Deno.exit(await main());
} catch (err) {
  console.error(`FAIL smoke:arm64: ${err instanceof Error ? err.message : err}`);
  Deno.exit(1);
}
