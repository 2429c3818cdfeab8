import { join } from "node:path";
import { z } from "zod";
import { hashFile } from "../blobs/digest.ts";

/**
 * What a self-extracting loam file wrote beside the agent in its payload (`payload.json`): the
 * version the build was given, the target, and the Deno it ships. The header passes the
 * extracted directory as `LOAM_PAYLOAD_DIR`; running from source there is none.
 */
const PayloadSchema = z.strictObject({
  kind: z.literal("sfx"),
  version: z.string().min(1),
  target: z.string().min(1),
  deno_version: z.string().min(1),
  built_at: z.string(),
});

/** How this loam runs: from a self-extracting file (with its payload), or from source. */
export type Packaging =
  | { kind: "source" }
  | z.infer<typeof PayloadSchema> & { dir: string; payload_sha256: string; file?: string };

/** The manifest of the payload: `<sha256>  <relative path>` per file, as `sha256sum` writes. */
export const MANIFEST = "MANIFEST.sha256";
/** Written by the header once an extraction is complete and verified: the payload's hash. */
const EXTRACTED_MARKER = ".loam-extracted";

let cached: Packaging | undefined;

/**
 * How this process was started, read once: a packaged file's payload (its `payload.json` and
 * the marker holding the payload hash), else `source`. A payload dir that cannot be read is
 * reported as an error, never silently taken for a source run.
 */
export function packaging(): Packaging {
  if (cached) return cached;
  const dir = Deno.env.get("LOAM_PAYLOAD_DIR");
  if (!dir) return cached = { kind: "source" };
  try {
    const info = PayloadSchema.parse(JSON.parse(Deno.readTextFileSync(join(dir, "payload.json"))));
    const payload_sha256 = Deno.readTextFileSync(join(dir, EXTRACTED_MARKER)).trim();
    const file = Deno.env.get("LOAM_SELF");
    return cached = { ...info, dir, payload_sha256, ...(file ? { file } : {}) };
  } catch (err) {
    throw new Error(`LOAM_PAYLOAD_DIR=${dir} is not a loam payload: ${(err as Error).message}`);
  }
}

/** One file of the payload whose content is not what the build wrote. */
export interface PayloadProblem {
  path: string;
  problem: string;
}

/**
 * Re-hashes every file of the extracted payload against the manifest the build wrote into it
 * (`loam version --verify`): what a damaged disk, a stray edit or a half-finished copy changed.
 * Files Deno writes itself at run time (its code caches) are not in the manifest.
 */
export async function verifyPayload(dir: string): Promise<PayloadProblem[]> {
  const problems: PayloadProblem[] = [];
  const manifest = await Deno.readTextFile(join(dir, MANIFEST));
  for (const line of manifest.split("\n")) {
    if (line === "") continue;
    const expected = line.slice(0, 64);
    const path = line.slice(66);
    try {
      const actual = (await hashFile(join(dir, path))).hash.digest("hex");
      if (actual !== expected) problems.push({ path, problem: "content differs" });
    } catch (err) {
      problems.push({ path, problem: (err as Error).message });
    }
  }
  return problems;
}
