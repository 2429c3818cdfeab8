import assert from "node:assert/strict";
import { SupervisedProcess, type SupervisorOptions } from "./workload_supervisor.ts";
import { createLogger } from "../system/logger.ts";
import { sleep } from "../system/sleep.ts";
import { eventually } from "../../tests/e2e/mesh_helpers.ts";

/** Polls a synchronous `ready` until it says so (see `eventually`). */
const until = (what: string, ready: () => boolean) =>
  eventually(what, () => Promise.resolve(ready()));

/** The agent-log lines a supervisor wrote, parsed. */
type Line = { msg: string; ts: string; [field: string]: unknown };

/** A supervisor of `sh -c script` whose log lines are kept in `lines`. */
function supervised(script: string, options: Partial<SupervisorOptions> = {}) {
  const lines: Line[] = [];
  const log = createLogger({
    level: "info",
    format: "json",
    write: (line) => lines.push(JSON.parse(line)),
  }).child({ instance_id: "test" });
  const process = new SupervisedProcess({
    command: new Deno.Command("sh", {
      args: ["-c", script],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }),
    log,
    stopGraceMs: 1000,
    policy: "restart",
    onGiveUp: () => {},
    ...options,
  });
  return { process, lines };
}

Deno.test("a crash is restarted with backoff, and the third within a minute gives up with the reason", async () => {
  const failed: string[] = [];
  const { process, lines } = supervised("echo up; exit 3", {
    onGiveUp: (reason) => failed.push(reason),
  });
  await process.start();
  await until("the give-up", () => failed.length > 0);
  assert.deepEqual(failed, ["crashed 3 times within 60 s (last exit code 3)"]);
  const starts = lines.filter((l) => l.msg === "instance started").map((l) => Date.parse(l.ts));
  assert.equal(starts.length, 3);
  assert.deepEqual(
    lines.filter((l) => l.msg === "instance exited; restarting").map((l) => l.delay_ms),
    [500, 1000],
  );
  assert.ok(starts[1]! - starts[0]! >= 500, `restarted after ${starts[1]! - starts[0]!} ms`);
  assert.ok(starts[2]! - starts[1]! >= 1000, `restarted after ${starts[2]! - starts[1]!} ms`);
  assert.ok(lines.some((l) => l.msg === "instance broken" && l.instance_id === "test"));
  assert.ok(lines.some((l) => l.msg === "instance output" && l.line === "up"));
  const view = process.view();
  assert.equal(view.state, "exited");
  assert.equal(view.exit_code, 3);
  assert.equal(view.restarts, 3);
  await sleep(700);
  assert.equal(lines.filter((l) => l.msg === "instance started").length, 3, "not restarted");
});

Deno.test("an exit within the start grace period rejects with the exit code and the last output", async () => {
  const { process } = supervised("echo 'missing config file' >&2; exit 7");
  await assert.rejects(
    process.start({
      graceMs: 1000,
      describe: (code) => `exited with code ${code} right after start`,
    }),
    { message: "exited with code 7 right after start: missing config file" },
  );
  assert.equal(process.view().exit_code, 7);
  assert.equal(process.view().restarts, 0, "a failed start is not restarted");

  // an exit the check accepts (a run to completion ending well) passes to the policy
  const ended: [string, number][] = [];
  const done = supervised("echo done", {
    policy: "never",
    onEnded: (state, code) => ended.push([state, code]),
  });
  await done.process.start({
    graceMs: 1000,
    fails: (code) => code !== 0,
    describe: (code) => `module exited with code ${code}`,
  });
  await until("the end", () => ended.length > 0);
  assert.deepEqual(ended, [["exited", 0]]);
  assert.deepEqual(done.process.logs().map((l) => l.line), ["done"]);
});

Deno.test("stop terminates the process (SIGKILL when it ignores SIGTERM) and nothing restarts it", async () => {
  const { process, lines } = supervised("echo up; exec sleep 30");
  await process.start();
  assert.equal(process.view().state, "running");
  assert.ok(process.view().pid! > 0);
  await process.stop();
  // stop resolves on the exit; the record follows once the output has ended
  await until("the exit recorded", () => process.view().exit_code !== undefined);
  assert.equal(process.view().exit_code, 143);

  const stubborn = supervised("trap '' TERM; echo up; exec sleep 30", { stopGraceMs: 300 });
  await stubborn.process.start();
  await until("the trap set", () => stubborn.process.logs().length > 0);
  const started = performance.now();
  await stubborn.process.stop();
  assert.ok(performance.now() - started >= 250, "waited out the grace period");
  await until("the exit recorded", () => stubborn.process.view().exit_code !== undefined);
  assert.equal(stubborn.process.view().exit_code, 137);
  await sleep(700);
  assert.equal(lines.filter((l) => l.msg === "instance started").length, 1, "not restarted");
  assert.equal(stubborn.lines.filter((l) => l.msg === "instance started").length, 1);
});

Deno.test("an abort during the start check stops the process and rejects with the reason", async () => {
  const { process } = supervised("exec sleep 30");
  const controller = new AbortController();
  const reason = new Error("cancelled");
  setTimeout(() => controller.abort(reason), 100);
  const check = { graceMs: 5000, describe: String, signal: controller.signal };
  await assert.rejects(process.start(check), (err) => err === reason);
  await until("the exit recorded", () => process.view().exit_code !== undefined);
  assert.equal(process.view().exit_code, 143);

  const never = supervised("exec sleep 30");
  await assert.rejects(never.process.start(check), (err) => err === reason);
  assert.equal(never.process.view().pid, null, "an aborted signal spawns nothing");
});

Deno.test("a run past its wall-time cap is killed and ends as killed", async () => {
  const ended: [string, number][] = [];
  const { process } = supervised("exec sleep 30", {
    policy: "never",
    wallTimeMs: 200,
    onEnded: (state, code) => ended.push([state, code]),
  });
  await process.start();
  await until("the end", () => ended.length > 0);
  assert.deepEqual(ended, [["killed", 137]]);
  assert.equal(process.view().state, "killed");
  assert.deepEqual(process.logs().map((l) => l.line), ["killed after 0.2 s (wall-time cap)"]);
});
