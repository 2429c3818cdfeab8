/**
 * What `deno task chaos` deploys: one artifact per kind (a native program, a config package, an
 * ONNX model), small and fast, or large, throttled and new each round (so a kill lands while
 * it downloads), and the directive for a round.
 * @module
 */
import { sha256Hex, startBlobServer } from "../tests/fixtures/blob_server.ts";
import type { BlobServer } from "../tests/fixtures/blob_server.ts";
import { tarGz } from "../tests/fixtures/tarball.ts";
import { tinyOnnxModel } from "../tests/fixtures/tiny_onnx.ts";
import { toString as bytesToString } from "uint8arrays/to-string";

/** The kinds chaos deploys. */
export type ChaosKind = "native_binary" | "config_package" | "onnx_model" | "container";

/** Bytes per second of the throttled routes: a 3 MiB artifact downloads in ~1.5 s. */
const SLOW_RATE = 2 * 1024 * 1024;
/** Random bytes padding a large artifact (base64: 4 MiB on the wire). */
const PAD = 3 * 1024 * 1024;

/** One servable artifact. */
export interface Artifact {
  kind: ChaosKind;
  path: string;
  bytes: Uint8Array;
}

/** The blob server and the artifacts on it. */
export interface ChaosArtifacts extends AsyncDisposable {
  server: BlobServer;
  /** The small, fast artifact of `kind` (the same blob every round). */
  of(kind: ChaosKind): Artifact;
  /**
   * A large, throttled artifact of `kind` that no round used before (a new hash), so that a
   * kill lands in a download that really runs rather than on a blob already stored. ONNX
   * models and image archives cannot be padded: the small one is returned.
   */
  fresh(kind: ChaosKind, round: number): Promise<Artifact>;
}

function random(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

// a loop, not `exec sleep`: the agent finds a dead agent's programs by their path in argv
const program = (padding: number) =>
  new TextEncoder().encode(
    `#!/bin/sh\nwhile :; do sleep 0.2; done\n# ${bytesToString(random(padding), "base64")}\n`,
  );
const pkg = async (padding: number) =>
  await tarGz([
    { name: "app.conf", content: "v=1\n" },
    // random bytes as base64 text: gzip cannot shrink them below the padding's size
    ...(padding ? [{ name: "pad.txt", content: bytesToString(random(padding), "base64") }] : []),
  ]);

/** Builds the small artifacts (and a container image archive, when given) and serves them. */
export async function chaosArtifacts(image?: Uint8Array): Promise<ChaosArtifacts> {
  const small: Artifact[] = [
    { kind: "native_binary", path: "/prog", bytes: program(8) },
    { kind: "config_package", path: "/pkg", bytes: await pkg(0) },
    { kind: "onnx_model", path: "/model", bytes: tinyOnnxModel() },
    ...(image ? [{ kind: "container" as const, path: "/image", bytes: image }] : []),
  ];
  const server = startBlobServer(Object.fromEntries(small.map((a) => [a.path, { body: a.bytes }])));
  const of = (kind: ChaosKind) => small.find((a) => a.kind === kind)!;
  return {
    server,
    of,
    fresh: async (kind, round) => {
      if (kind === "onnx_model" || kind === "container") return of(kind);
      const bytes = kind === "native_binary" ? program(PAD) : await pkg(PAD);
      const path = `/${kind}-${round}`;
      server.routes[path] = { body: bytes, bytesPerSecond: SLOW_RATE };
      return { kind, path, bytes };
    },
    [Symbol.asyncDispose]: () => server.close(),
  };
}

/** The API body deploying `artifact` as `id` (config packages go under `targets`). */
export function chaosDirective(
  id: string,
  artifact: { kind: ChaosKind; path: string; bytes: Uint8Array },
  url: string,
  targets: string,
): Record<string, unknown> {
  const type = artifact.kind === "native_binary"
    ? { type: "native_binary", arch: Deno.build.arch, args: [] }
    : artifact.kind === "config_package"
    ? { type: "config_package", target_path: `${targets}/${id}` }
    : artifact.kind === "container"
    ? { type: "container", runtime: "podman", ports: [], env: {} }
    : { type: "onnx_model" };
  return {
    directive_id: id,
    scope: { type: "broadcast" },
    artifact: {
      blob_hash: `sha256:${sha256Hex(artifact.bytes)}`,
      size_bytes: artifact.bytes.length,
      urls: [url],
      name: id,
      artifact_type: type,
    },
    options: { timeout_seconds: 120 },
  };
}
