/**
 * Fuzz family "tar": config packages through the config_package adapter in process: tars and
 * tar.gz built from hostile entries (climbing names, absolute paths, links, devices, long and
 * odd names), byte mutations of a valid package, and random bytes. A refusal must name what was
 * wrong and leave nothing behind: no target, no staging directory.
 * @module
 */
import fc from "fast-check";
import { ConfigPackageAdapter } from "../src/runtimes/config_package.ts";
import { testDirective } from "../tests/fixtures/directive.ts";
import { tarball, type TarEntry } from "../tests/fixtures/tarball.ts";
import { describe, draw, mutatedBytes, randomBytes } from "./fuzz_inputs.ts";
import { FamilyTally, judge, type Outcome } from "./fuzz_tally.ts";

interface Entry {
  name: string;
  type: "file" | "directory" | "symlink" | "link" | "character-device" | "fifo";
  content: string;
}

/** The fixture's entry for a drawn one (`content` is a link's target for links). */
function tarEntry(e: Entry): TarEntry {
  if (e.type === "file") return { name: e.name, content: e.content };
  if (e.type === "symlink" || e.type === "link") {
    return { name: e.name, type: e.type, linkname: e.content };
  }
  return { name: e.name, type: e.type };
}

const pack = (entries: Entry[], gzip: boolean) => tarball(entries.map(tarEntry), gzip);

const NAME = fc.oneof(
  { arbitrary: fc.constantFrom("app.conf", "dir/", "dir/a.conf", "./b.conf"), weight: 4 },
  fc.constantFrom(
    "..",
    "../x",
    "a/../../x",
    "/etc/x",
    "",
    ".",
    "a//b",
    "a/./b/../../..",
    "\u0000x",
  ),
  fc.string({ maxLength: 40 }),
  fc.integer({ min: 100, max: 400 }).map((n) => "n".repeat(n)),
);

const ENTRY: fc.Arbitrary<Entry> = fc.record({
  name: NAME,
  type: fc.oneof(
    { arbitrary: fc.constant<Entry["type"]>("file"), weight: 6 },
    fc.constantFrom<Entry["type"]>("directory", "symlink", "link", "character-device", "fifo"),
  ),
  content: fc.oneof(fc.string({ maxLength: 100 }), fc.constantFrom("/etc/passwd", "../../x")),
});

/** What is in `dir` besides the blob files: a refused package must leave nothing. */
async function leftovers(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (!e.name.endsWith(".tar")) names.push(e.name);
  return names;
}

/** Runs the family; returns its tally. */
export async function fuzzTar(dir: string, count: number, seed: number): Promise<FamilyTally[]> {
  const tally = new FamilyTally("config packages (tar, tar.gz)");
  const adapter = new ConfigPackageAdapter(`${dir}/instances`);
  await Deno.mkdir(`${dir}/instances`, { recursive: true });
  await Deno.mkdir(`${dir}/targets`);
  const valid = await pack([
    { name: "dir/", type: "directory", content: "" },
    { name: "dir/app.conf", type: "file", content: "v=1\n" },
  ], false);
  const validGz = await pack([{ name: "app.conf", type: "file", content: "v=1\n" }], true);
  type Draft = { entries: Entry[]; gzip: boolean } | { bytes: Uint8Array };
  const drafts = draw<Draft>(
    fc.oneof(
      {
        arbitrary: fc.record({
          entries: fc.array(ENTRY, { minLength: 1, maxLength: 6 }),
          gzip: fc.boolean(),
        }),
        weight: 4,
      },
      { arbitrary: mutatedBytes(valid).map((bytes) => ({ bytes })), weight: 3 },
      { arbitrary: mutatedBytes(validGz).map((bytes) => ({ bytes })), weight: 2 },
      { arbitrary: randomBytes().map((bytes) => ({ bytes })), weight: 1 },
    ),
    count,
    seed,
  );
  for (const [i, draft] of drafts.entries()) {
    const bytes = "bytes" in draft ? draft.bytes : await pack(draft.entries, draft.gzip);
    const blob = `${dir}/targets/${i}.tar`;
    await Deno.writeFile(blob, bytes);
    const target = `${dir}/targets/t${i}`;
    const d = testDirective(`fuzz-tar-${i}`, { type: "config_package", target_path: target });
    let outcome: Outcome = await judge(() =>
      adapter.activate(d, blob, new AbortController().signal)
    );
    if (outcome.kind === "rejected") {
      const left = await leftovers(`${dir}/targets`);
      if (left.length > 0) {
        outcome = { kind: "crash", what: `a refused package left ${left.join(", ")}` };
      }
    } else if (outcome.kind === "accepted") {
      await adapter.deactivate(`cfg-${d.directive_id}`).catch(() => {});
      await Deno.remove(target, { recursive: true }).catch(() => {});
    }
    tally.record(outcome, () => "bytes" in draft ? describe(bytes) : describe(draft.entries));
    await Deno.remove(blob);
  }
  return [tally];
}
