import { z } from "zod";
import { createSha256 } from "../blobs/digest.ts";

/** What a self-extracting loam file's header says about it (`--payload-info`). */
const PayloadInfoSchema = z.object({
  kind: z.literal("sfx"),
  target: z.string().min(1),
  version: z.string().min(1),
  payload_sha256: z.string().regex(/^[0-9a-f]{64}$/),
  payload_bytes: z.number().int().positive(),
  deno_version: z.string(),
  header_bytes: z.number().int().positive(),
});

/** A loam file's own account of itself, checked against its bytes. */
export type LoamFileInfo = z.infer<typeof PayloadInfoSchema>;

/** How long the header may take to answer `--payload-info` (it only prints). */
const INFO_TIMEOUT_MS = 10_000;
/** Largest answer taken from it. */
const MAX_INFO_BYTES = 4096;

/**
 * Reads what the loam file at `path` holds, as its header answers `--payload-info` (sh runs
 * only the header's first lines for that: nothing is extracted and no agent code runs), then
 * checks the file against it: its size must be header + payload, and the payload must hash to
 * what the header names, so a truncated or altered file is refused before anything depends on
 * it. A compiled (deno compile) loam file has no such header and is refused too.
 *
 * @throws an Error saying what the file is not, or how it is damaged.
 */
export async function readLoamFile(path: string): Promise<LoamFileInfo> {
  const out = await new Deno.Command("sh", {
    args: [path, "--payload-info"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(INFO_TIMEOUT_MS),
  }).output().catch((err: Error) => {
    throw new Error(`cannot ask the file what it holds: ${err.message}`);
  });
  const text = new TextDecoder().decode(out.stdout.subarray(0, MAX_INFO_BYTES)).trim();
  let info: LoamFileInfo;
  try {
    if (!out.success) throw new Error(`exit code ${out.code}`);
    info = PayloadInfoSchema.parse(JSON.parse(text));
  } catch {
    throw new Error(
      "not a self-extracting loam file (its header does not answer --payload-info; " +
        "build one with `deno task build --kind sfx`)",
    );
  }
  const { size } = await Deno.stat(path);
  const payload = size - info.header_bytes;
  if (payload !== info.payload_bytes) {
    throw new Error(
      `the file is damaged: its payload is ${payload} bytes, its header says ` +
        `${info.payload_bytes} (truncated or appended to)`,
    );
  }
  const hash = createSha256();
  const file = await Deno.open(path, { read: true });
  try {
    await file.seek(info.header_bytes, Deno.SeekMode.Start);
    for await (const chunk of file.readable) hash.update(chunk);
  } catch (err) {
    file.close();
    throw err;
  }
  const got = hash.digest("hex");
  if (got !== info.payload_sha256) {
    throw new Error(
      `the file is damaged: its payload hashes to sha256:${got}, its header says ` +
        `sha256:${info.payload_sha256}`,
    );
  }
  return info;
}

/** The CPU architecture a build target names: `aarch64-unknown-linux-gnu` → `aarch64`. */
export function targetArch(target: string): string {
  return target.split("-")[0]!;
}

/**
 * Orders two versions as people number them: dot-separated parts compared as numbers where
 * both are numbers (`0.10.0` after `0.9.2`), else as text; a pre-release suffix (`1.0.0-rc1`)
 * sorts before its release. Negative when `a` is older. A downgrade is refused by this order
 * unless the directive allows it, so it must not take `10` for older than `9`.
 */
export function compareVersions(a: string, b: string): number {
  const [aCore = "", aPre] = splitPre(a);
  const [bCore = "", bPre] = splitPre(b);
  const aParts = aCore.split(".");
  const bParts = bCore.split(".");
  for (let i = 0; i < Math.max(aParts.length, bParts.length); i++) {
    const x = aParts[i] ?? "0";
    const y = bParts[i] ?? "0";
    const order = /^\d+$/.test(x) && /^\d+$/.test(y) ? Number(x) - Number(y) : x.localeCompare(y);
    if (order !== 0) return Math.sign(order);
  }
  if (aPre === bPre) return 0;
  if (aPre === undefined) return 1;
  if (bPre === undefined) return -1;
  return Math.sign(aPre.localeCompare(bPre));
}

/** `1.2.0-rc1+g3f` → `["1.2.0", "rc1"]`: build metadata after `+` does not order. */
function splitPre(version: string): [string, string | undefined] {
  const release = version.split("+")[0]!;
  const at = release.indexOf("-");
  return at < 0 ? [release, undefined] : [release.slice(0, at), release.slice(at + 1)];
}
