import { basename, join, resolve } from "node:path";
import { atomicWriteFile, syncDir } from "./atomic_write.ts";
import { INSTALLED, pointLink } from "./installed_layout.ts";

/**
 * Where this agent keeps its loam files: `<bin>/<version>/loam`, with `current` and `previous`
 * links and the trial marker of an update in progress. An installed agent uses
 * /var/lib/loam/bin (its unit runs `current/loam`); a file run by hand uses `<data dir>/bin`,
 * and its header hands over to `current` there.
 */
export interface BinLayout {
  binDir: string;
  current: string;
  previous: string;
  /** The trial marker: an update that has not yet confirmed itself (see {@link Trial}). */
  trial: string;
}

/** The layout for an agent on `dataDir` running the file `self` (undefined from source). */
export function binLayoutFor(dataDir: string, self: string | undefined): BinLayout {
  const installed = self !== undefined && resolve(self).startsWith(`${INSTALLED.binDir}/`);
  const binDir = installed ? INSTALLED.binDir : join(dataDir, "bin");
  return {
    binDir,
    current: join(binDir, "current"),
    previous: join(binDir, "previous"),
    trial: join(binDir, "trial"),
  };
}

/**
 * A self-update on trial, as the marker holds it: written by the old version just before it
 * hands over, counted by the new file's header at each start (`starts`), removed by the new
 * version once it is ready (and has peers, when the old one had), or turned `rolled_back` with
 * the reason by whichever gave up: the header (too many starts, past the deadline) or the new
 * agent (no peers by the deadline). The old version reads that and reports the deployment.
 *
 * One `key=value` per line, so that the sh header reads and writes it too.
 */
export interface Trial {
  directive_id: string;
  from: string;
  to: string;
  /** Unix seconds. */
  deadline: number;
  starts: number;
  /** Whether the old version had peers: then the new one must rejoin the mesh to pass. */
  peers: boolean;
  state: "trying" | "rolled_back";
  reason?: string;
}

/** Largest marker read. */
const MAX_MARKER_BYTES = 4096;

/** The marker, or undefined when there is none (or it is not one: it is then ignored). */
export async function readTrial(layout: BinLayout): Promise<Trial | undefined> {
  let text: string;
  try {
    const bytes = await Deno.readFile(layout.trial);
    if (bytes.length > MAX_MARKER_BYTES) return undefined;
    text = new TextDecoder().decode(bytes);
  } catch {
    return undefined;
  }
  const fields = new Map<string, string>();
  for (const line of text.split("\n")) {
    const at = line.indexOf("=");
    if (at > 0) fields.set(line.slice(0, at), line.slice(at + 1));
  }
  const [directive_id, from, to, state] = ["directive", "from", "to", "state"].map((k) =>
    fields.get(k)
  );
  const deadline = Number(fields.get("deadline"));
  const starts = Number(fields.get("starts") ?? "0");
  if (!directive_id || !from || !to || !Number.isFinite(deadline) || !Number.isFinite(starts)) {
    return undefined;
  }
  if (state !== "trying" && state !== "rolled_back") return undefined;
  const reason = fields.get("reason");
  return {
    directive_id,
    from,
    to,
    deadline,
    starts,
    peers: fields.get("peers") === "1",
    state,
    ...(reason ? { reason } : {}),
  };
}

/** Writes the marker atomically (the header rewrites it the same way: temp, then rename). */
export async function writeTrial(layout: BinLayout, trial: Trial): Promise<void> {
  const oneLine = (v: string) => v.replace(/[\r\n]+/g, " ").slice(0, 500);
  const lines = [
    `directive=${oneLine(trial.directive_id)}`,
    `from=${trial.from}`,
    `to=${trial.to}`,
    `deadline=${Math.floor(trial.deadline)}`,
    `starts=${trial.starts}`,
    `peers=${trial.peers ? 1 : 0}`,
    `state=${trial.state}`,
    ...(trial.reason ? [`reason=${oneLine(trial.reason)}`] : []),
  ];
  await atomicWriteFile(layout.trial, `${lines.join("\n")}\n`, { mode: 0o600 });
}

/** Removes the marker: the trial is over and reported. */
export async function removeTrial(layout: BinLayout): Promise<void> {
  await Deno.remove(layout.trial).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
  await syncDir(layout.binDir).catch(() => {});
}

/** The version a link of the layout points at, or undefined when it is not set. */
export async function linkedVersion(link: string): Promise<string | undefined> {
  const target = await Deno.readLink(link).catch(() => undefined);
  return target === undefined ? undefined : basename(target);
}

/** Points `link` (`current` or `previous`) at `<bin>/<version>`, by rename. */
export async function pointAt(layout: BinLayout, link: string, version: string): Promise<void> {
  await pointLink(link, version);
  await syncDir(layout.binDir);
}

/**
 * Removes the version directories that neither `current` nor `previous` points at, in this
 * agent's own bin dir only (agents sharing a host never share one).
 */
export async function pruneBin(layout: BinLayout): Promise<string[]> {
  const keep = new Set(
    [await linkedVersion(layout.current), await linkedVersion(layout.previous)].filter(Boolean),
  );
  const removed: string[] = [];
  for await (const entry of Deno.readDir(layout.binDir)) {
    if (!entry.isDirectory || keep.has(entry.name)) continue;
    await Deno.remove(join(layout.binDir, entry.name), { recursive: true });
    removed.push(entry.name);
  }
  return removed;
}
