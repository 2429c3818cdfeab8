import assert from "node:assert/strict";
import { join } from "node:path";
import {
  findProcesses,
  processWithPid,
  readProcessRecord,
  rememberProcess,
} from "./workload_process.ts";

/** The process the record at `path` names, if that very process runs: as the adapter finds it. */
async function recallProcess(path: string) {
  const record = await readProcessRecord(path);
  if (!record) return undefined;
  const recorded = new Map([[record.pid, { started: record.started, found: true }]]);
  return (await findProcesses(() => undefined, recorded))[0];
}

Deno.test("pid records: the process is recalled while it runs, even after an exec; never another one", async () => {
  const dir = await Deno.makeTempDir();
  const child = new Deno.Command("sh", {
    args: ["-c", "sleep 0.3; exec sleep 5"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const record = join(dir, "bin-x.pid");
    assert.equal(await rememberProcess(record, child.pid), true);
    assert.equal((await Deno.stat(record)).mode! & 0o777, 0o600);
    assert.equal((await recallProcess(record))?.pid, child.pid);
    await new Promise((r) => setTimeout(r, 600));
    const after = await recallProcess(record);
    assert.equal(after?.pid, child.pid, "the same process once it exec'd sleep");
    assert.match(after!.args, /^sleep 5/);

    // a record naming a live pid with another start time is a reused pid: not ours
    const me = (await processWithPid(Deno.pid))!;
    await Deno.writeTextFile(
      record,
      JSON.stringify({ ...me, started: "Thu Jan  1 00:00:00 1970" }),
    );
    assert.equal(await recallProcess(record), undefined);
    for (const junk of ["", "{", "[]", '{"pid":1,"started":"x"}', '{"pid":"12","started":"x"}']) {
      await Deno.writeTextFile(record, junk);
      assert.equal(await recallProcess(record), undefined, junk);
    }
    await Deno.writeTextFile(record, JSON.stringify(me) + " ".repeat(70_000));
    assert.equal(await recallProcess(record), undefined, "too large");
    assert.equal(await recallProcess(join(dir, "missing.pid")), undefined);

    await rememberProcess(record, child.pid);
    child.kill("SIGKILL");
    await child.status;
    assert.equal(await recallProcess(record), undefined, "gone");
    assert.equal(await rememberProcess(record, child.pid), false);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
});
