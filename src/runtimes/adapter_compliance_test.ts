import assert from "node:assert/strict";
import { join } from "node:path";
import { Registry } from "prom-client";
import {
  adapterComplianceSuite,
  type ComplianceSetup,
} from "../../tests/fixtures/adapter_compliance.ts";
import { ConfigPackageAdapter } from "./config_package.ts";
import { ContainerAdapter } from "./container.ts";
import { GgufModelAdapter } from "./gguf_model.ts";
import { createJobMetrics } from "./job_metrics.ts";
import { NativeBinaryAdapter } from "./native_binary.ts";
import { OnnxModelAdapter } from "./onnx_model.ts";
import { WasmModuleAdapter } from "./wasm_module.ts";
import { createLogger } from "../system/logger.ts";
import { testDirective } from "../../tests/fixtures/directive.ts";
import { tarGz } from "../../tests/fixtures/tarball.ts";
import { tinyOnnxModel } from "../../tests/fixtures/tiny_onnx.ts";
import {
  buildWebImageArchive,
  podman,
  podmanAvailable,
  podmanEnv,
} from "../../tests/fixtures/container_image.ts";
import { buildTinyGguf } from "../../tasks/gen_tiny_gguf.ts";
import { agentFlags } from "../../tasks/permissions.ts";

const quiet = createLogger({ level: "error", format: "json", write: () => {} });
const onFailed = () => {};
/** Bytes that are no executable, module, archive or model of any kind. */
const GARBAGE = new Uint8Array(4096).fill(0x5a);

/** A temp dir holding `files`, and a setup's `close` that removes it. */
async function tempWith(files: Record<string, Uint8Array>) {
  const dir = await Deno.makeTempDir({ prefix: "loam-test-" });
  for (const [name, bytes] of Object.entries(files)) await Deno.writeFile(join(dir, name), bytes);
  return { dir, close: () => Deno.remove(dir, { recursive: true }) };
}

/** The inference settings the model adapters are built from, with metrics of their own. */
function inference() {
  return {
    threads: 1,
    maxQueue: 4,
    timeoutMs: 30_000,
    metrics: createJobMetrics(new Registry()),
    logger: quiet,
  };
}

/**
 * The native adapter spawns the programs it installs, the WASM one `Deno.execPath()` (not the
 * `deno` on PATH that the test runner may run), and node-llama-cpp forks it too: the suite runs
 * with the agent's own permissions, in a `deno test` of its own when this one has fewer (as
 * tests/e2e/native_abort_driver.ts does).
 */
const mayRunAny = (await Deno.permissions.query({ name: "run" })).state === "granted";

if (mayRunAny) registerSuites(await podmanAvailable());
else {
  Deno.test("the runtime adapters comply, in a test process with the agent's permissions", async () => {
    const out = await new Deno.Command("deno", {
      args: ["test", ...agentFlags(), import.meta.filename!],
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
      signal: AbortSignal.timeout(240_000),
    }).output();
    assert.equal(out.code, 0, "the compliance suite failed (its output is above)");
  });
}

/**
 * One run of the suite per adapter, each skipped with the reason where its runtime is missing
 * (`noPodman`: why podman cannot be used here).
 */
function registerSuites(noPodman: string | undefined): void {
  adapterComplianceSuite("native_binary", async () => {
    const { dir, close } = await tempWith({
      "svc": new TextEncoder().encode("#!/bin/sh\necho up\nexec sleep 30\n"),
      "garbage": GARBAGE,
    });
    const type = { type: "native_binary", arch: Deno.build.arch, args: [] };
    return {
      adapter: () => new NativeBinaryAdapter(join(dir, "instances"), quiet, onFailed),
      good: { directive: testDirective("nb", type), blobPath: join(dir, "svc"), logLine: "up" },
      bad: {
        directive: testDirective("nb-bad", type),
        blobPath: join(dir, "garbage"),
        error: /^not an executable/,
      },
      close,
    };
  });

  adapterComplianceSuite("wasm_module", async () => {
    const hello = await Deno.readFile(
      new URL("../../tests/fixtures/wasm/hello.wasm", import.meta.url),
    );
    const { dir, close } = await tempWith({ "hello.wasm": hello, "garbage": GARBAGE });
    const type = { type: "wasm_module", wasi_capabilities: ["args", "stdout", "stderr"] };
    const settings = { maxSeconds: 30, memoryMb: 64, allowAbsolutePaths: false };
    return {
      adapter: () => new WasmModuleAdapter(join(dir, "instances"), settings, quiet, onFailed),
      good: {
        directive: testDirective("wasm", type, { config: { args: ["world"] } }),
        blobPath: join(dir, "hello.wasm"),
        logLine: "hello from wasm",
      },
      bad: {
        directive: testDirective("wasm-bad", type),
        blobPath: join(dir, "garbage"),
        error: /^module exited with code 71/,
      },
      close,
    };
  });

  adapterComplianceSuite("config_package", async () => {
    const pkg = await tarGz([{ name: "app.conf", content: "v=1\n" }]);
    const { dir, close } = await tempWith({ "pkg.tar.gz": pkg, "garbage": GARBAGE });
    const type = { type: "config_package", target_path: join(dir, "etc", "app") };
    return {
      adapter: () => new ConfigPackageAdapter(join(dir, "instances")),
      good: { directive: testDirective("cfg", type), blobPath: join(dir, "pkg.tar.gz") },
      bad: {
        directive: testDirective("cfg-bad", type),
        blobPath: join(dir, "garbage"),
        error: /^config package rejected/,
      },
      close,
    };
  });

  adapterComplianceSuite("onnx_model", async () => {
    const { dir, close } = await tempWith({ "tiny.onnx": tinyOnnxModel(), "garbage": GARBAGE });
    const type = { type: "onnx_model", execution_providers: ["CPUExecutionProvider"] };
    return {
      adapter: () => new OnnxModelAdapter(inference()),
      good: { directive: testDirective("onnx", type), blobPath: join(dir, "tiny.onnx") },
      bad: {
        directive: testDirective("onnx-bad", type),
        blobPath: join(dir, "garbage"),
        error: /^ONNX model did not load/,
      },
      close,
    };
  });

  adapterComplianceSuite("gguf_model", async () => {
    const { dir, close } = await tempWith({ "tiny.gguf": buildTinyGguf(1), "garbage": GARBAGE });
    const type = { type: "gguf_model", context_length: 256 };
    const settings = { ...inference(), contextLength: 256, gpuLayers: 0, hasGpu: false };
    return {
      adapter: () => new GgufModelAdapter(settings),
      good: { directive: testDirective("llm", type), blobPath: join(dir, "tiny.gguf") },
      bad: {
        directive: testDirective("llm-bad", type),
        blobPath: join(dir, "garbage"),
        error: /^GGUF model did not load: not a GGUF file/,
      },
      close,
    };
  });

  adapterComplianceSuite("container", async (): Promise<ComplianceSetup> => {
    const { dir, close } = await tempWith({ "garbage": GARBAGE });
    const pm = await podmanEnv(join(dir, "podman"));
    // the adapter's CLI calls inherit this process's environment (the store's containers.conf)
    const saved = Object.keys(pm.env).map((k) => [k, Deno.env.get(k)] as const);
    for (const [k, v] of Object.entries(pm.env)) Deno.env.set(k, v);
    const { archive } = await buildWebImageArchive(dir);
    const type = { type: "container", runtime: "podman" };
    const settings = {
      agentId: "12D3KooWComplianceAgent",
      publishAddress: "127.0.0.1",
      globalArgs: { podman: pm.flags, docker: [], containerd: [] },
      stopGraceSeconds: 0,
      checkIntervalMs: 60_000,
    };
    return {
      adapter: () => new ContainerAdapter(settings, quiet, onFailed),
      good: { directive: testDirective("ctr", type), blobPath: archive },
      bad: {
        directive: testDirective("ctr-bad", type),
        blobPath: join(dir, "garbage"),
        error: /^podman load failed/,
      },
      close: async () => {
        await podman(pm, ["rm", "-af", "-t", "0"]);
        for (const [k, v] of saved) {
          if (v === undefined) Deno.env.delete(k);
          else Deno.env.set(k, v);
        }
        await close();
      },
    };
  }, noPodman);
}
