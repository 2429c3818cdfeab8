/**
 * Packs an assembled payload directory into one self-extracting file: tasks/sfx_header.sh with
 * its placeholders filled in (payload offset, size and hash, version, target, the agent's Deno
 * flags), followed by the payload as a tar.gz. The header's length does not depend on the
 * numbers put into it (they are padded to a fixed width), so the offset it names is exact.
 * @module
 */
import denoConfig from "../deno.json" with { type: "json" };
import { agentFlags } from "./permissions.ts";
import { run } from "./target_packages.ts";
import { sha256OfFile } from "./sfx_payload.ts";

const HEADER = new URL("./sfx_header.sh", import.meta.url);
/** Width of the numbers filled into the header (bytes up to 10^15). */
const NUMBER_WIDTH = 16;

/** What the header says about its file. */
export interface HeaderFacts {
  version: string;
  target: string;
  denoVersion: string;
}

/**
 * deno.json's unstable features as flags: the file runs with --no-config, and the agent needs
 * them (unix datagram sockets for sd_notify are `net`).
 */
function unstableFlags(): string[] {
  return denoConfig.unstable.map((feature) => `--unstable-${feature}`);
}

/** Bytes `dir` takes on disk unpacked: each file rounded up to 4 KiB blocks, plus one per dir. */
async function diskUsage(dir: string): Promise<number> {
  let total = 4096;
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) total += await diskUsage(path);
    else total += Math.ceil((await Deno.lstat(path)).size / 4096) * 4096;
  }
  return total;
}

/** A number padded with spaces after it (an sh assignment ignores them). */
function padded(n: number): string {
  return String(n).padEnd(NUMBER_WIDTH, " ");
}

/** The header with every placeholder filled; `offset` is its own length in bytes. */
function renderHeader(
  template: string,
  facts: HeaderFacts,
  payload: { bytes: number; sha256: string; unpacked: number },
): string {
  for (const value of [facts.version, facts.target, facts.denoVersion]) {
    if (!/^[A-Za-z0-9._+-]+$/.test(value)) throw new Error(`"${value}" cannot go into the header`);
  }
  const fill = (offset: number) =>
    template
      .replaceAll("@PAYLOAD_OFFSET@", padded(offset))
      .replaceAll("@PAYLOAD_BYTES@", padded(payload.bytes))
      .replaceAll("@PAYLOAD_SHA256@", payload.sha256)
      .replaceAll("@PAYLOAD_UNPACKED@", padded(payload.unpacked))
      .replaceAll("@VERSION@", facts.version)
      .replaceAll("@TARGET@", facts.target)
      .replaceAll("@DENO_VERSION@", facts.denoVersion)
      .replaceAll("@AGENT_FLAGS@", [...unstableFlags(), ...agentFlags()].join(" "));
  const length = new TextEncoder().encode(fill(0)).length;
  return fill(length);
}

/**
 * Writes `output` (mode 0755, through a temp file and rename): the header, then `payloadDir`
 * as a tar.gz (sorted, owner 0, fixed mtimes, so the same input packs to the same bytes).
 */
export async function packSfx(
  payloadDir: string,
  output: string,
  facts: HeaderFacts,
): Promise<{ payloadBytes: number; payloadSha256: string }> {
  const archive = `${output}.payload.tar.gz`;
  await run("sh", [
    "-c",
    'tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$1" -cf - . | gzip -6 -n > "$2"',
    "pack",
    payloadDir,
    archive,
  ]);
  const payloadBytes = (await Deno.stat(archive)).size;
  const payloadSha256 = await sha256OfFile(archive);
  const header = renderHeader(await Deno.readTextFile(HEADER), facts, {
    bytes: payloadBytes,
    sha256: payloadSha256,
    unpacked: await diskUsage(payloadDir),
  });
  const partial = `${output}.partial`;
  await Deno.writeTextFile(partial, header);
  await run("sh", ["-c", 'cat "$1" >> "$2"', "append", archive, partial]);
  await Deno.remove(archive);
  await Deno.chmod(partial, 0o755);
  await Deno.rename(partial, output);
  return { payloadBytes, payloadSha256 };
}
