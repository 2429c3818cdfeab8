import assert from "node:assert/strict";
import { join } from "node:path";
import {
  binLayoutFor,
  linkedVersion,
  pointAt,
  pruneBin,
  readTrial,
  removeTrial,
  writeTrial,
} from "./update_trial.ts";

Deno.test("the bin layout: the installed one for a file under /var/lib/loam/bin, else the data dir's", () => {
  assert.equal(binLayoutFor("/d", "/var/lib/loam/bin/2/loam").binDir, "/var/lib/loam/bin");
  assert.equal(binLayoutFor("/d", "/home/me/loam-x86_64-linux").binDir, "/d/bin");
  assert.equal(binLayoutFor("/d", undefined).trial, "/d/bin/trial");
});

Deno.test("the trial marker round-trips; a damaged one reads as none", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const layout = binLayoutFor(dir, undefined);
    await Deno.mkdir(layout.binDir);
    assert.equal(await readTrial(layout), undefined);
    const trial = {
      directive_id: "up-3",
      from: "2.0.0",
      to: "3.0.0",
      deadline: 1_800_000_000,
      starts: 0,
      peers: true,
      state: "trying" as const,
    };
    await writeTrial(layout, trial);
    assert.deepEqual(await readTrial(layout), trial);
    await writeTrial(layout, { ...trial, state: "rolled_back", reason: "no peers\nwithin 60 s" });
    assert.deepEqual(await readTrial(layout), {
      ...trial,
      state: "rolled_back",
      reason: "no peers within 60 s",
    });
    await Deno.writeTextFile(layout.trial, "from=2\nstate=maybe\n");
    assert.equal(await readTrial(layout), undefined);
    await removeTrial(layout);
    await removeTrial(layout); // twice is fine
    assert.equal(await readTrial(layout), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("links flip by rename and pruning keeps what current and previous point at", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const layout = binLayoutFor(dir, undefined);
    for (const v of ["1", "2", "3"]) await Deno.mkdir(join(layout.binDir, v), { recursive: true });
    await pointAt(layout, layout.previous, "2");
    await pointAt(layout, layout.current, "3");
    assert.equal(await linkedVersion(layout.current), "3");
    assert.deepEqual(await pruneBin(layout), ["1"]);
    const left = [];
    for await (const e of Deno.readDir(layout.binDir)) left.push(e.name);
    assert.deepEqual(left.sort(), ["2", "3", "current", "previous"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
