import type { InferenceSession } from "onnxruntime-node";
import { probeModel } from "./probe_model.ts";

/** The onnxruntime-node module, loaded on first use (its native library costs start-up time). */
export type OnnxRuntime = typeof import("onnxruntime-node");

let runtime: Promise<OnnxRuntime> | undefined;

/** Loads onnxruntime-node once; later calls share the module. */
export function loadOnnxRuntime(): Promise<OnnxRuntime> {
  runtime ??= import("onnxruntime-node").then((ort) => {
    ort.env.logLevel = "fatal"; // failed providers are reported in the instance, not on stderr
    return ort;
  });
  return runtime;
}

/** Peat's long execution provider names (and short ones) → onnxruntime-node's names. */
const PROVIDER_NAMES: Record<string, string> = {
  cpu: "cpu",
  cpuexecutionprovider: "cpu",
  cuda: "cuda",
  cudaexecutionprovider: "cuda",
  tensorrt: "tensorrt",
  tensorrtexecutionprovider: "tensorrt",
  dml: "dml",
  dmlexecutionprovider: "dml",
  coreml: "coreml",
  coremlexecutionprovider: "coreml",
  webgpu: "webgpu",
  webgpuexecutionprovider: "webgpu",
};

/** onnxruntime-node's name for an execution provider, or undefined for an unknown one. */
function providerName(name: string): string | undefined {
  return PROVIDER_NAMES[name.toLowerCase()];
}

/** An execution provider that was asked for but not used, and why. */
export interface SkippedProvider {
  provider: string;
  reason: string;
}

/** A loaded session and the provider actually in use. */
export interface OpenedSession {
  session: InferenceSession;
  provider: string;
  skipped: SkippedProvider[];
}

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split("\n")[0]!.slice(0, 300);
}

/**
 * Opens a session on the first of `requested` providers that loads (directive order), falling
 * back to CPU; onnxruntime itself does not fall back when a provider's libraries are missing.
 * Every provider passed over is reported with the reason.
 */
export async function openSession(
  model: string | Uint8Array,
  requested: string[],
  threads: number,
): Promise<OpenedSession> {
  const ort = await loadOnnxRuntime();
  const skipped: SkippedProvider[] = [];
  const tried = new Set<string>();
  const options = (provider: string): InferenceSession.SessionOptions => ({
    executionProviders: [provider],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    logSeverityLevel: 3,
  });
  // InferenceSession.create has one overload for a path and one for bytes, not for the union
  const create = (provider: string) =>
    typeof model === "string"
      ? ort.InferenceSession.create(model, options(provider))
      : ort.InferenceSession.create(model, options(provider));
  for (const asked of requested) {
    const provider = providerName(asked);
    if (!provider) {
      skipped.push({ provider: asked, reason: "unknown execution provider" });
      continue;
    }
    if (provider === "cpu") break;
    if (tried.has(provider)) continue;
    tried.add(provider);
    const supported = ort.listSupportedBackends().some((b) => b.name === provider);
    if (!supported) {
      skipped.push({ provider, reason: "not built into this onnxruntime-node" });
      continue;
    }
    try {
      return { session: await create(provider), provider, skipped };
    } catch (err) {
      skipped.push({ provider, reason: firstLine(err) });
    }
  }
  return { session: await create("cpu"), provider: "cpu", skipped };
}

/**
 * The execution providers that actually load on this node (for adverts and requirement
 * checks): `cpu` (onnxruntime-node ships a CPU build for every platform loam targets; the
 * library is not loaded for this, which keeps an idle agent small), and, on a node with an
 * NVIDIA GPU, each GPU provider that opens a session on a tiny graph (none when onnxruntime
 * itself does not load there).
 */
export async function loadableProviders(hasNvidiaGpu: boolean): Promise<string[]> {
  if (!hasNvidiaGpu) return ["cpu"];
  let ort: OnnxRuntime;
  try {
    ort = await loadOnnxRuntime();
  } catch {
    return [];
  }
  const loadable: string[] = [];
  for (const backend of ort.listSupportedBackends()) {
    if (backend.name !== "cuda" && backend.name !== "tensorrt") continue;
    const opened = await openSession(probeModel(), [backend.name], 1).catch(() => undefined);
    if (opened?.provider === backend.name) loadable.push(backend.name);
    await opened?.session.release();
  }
  return [...loadable, "cpu"];
}
