import assert from "node:assert/strict";
import { openFileCount, processUsage } from "./process_usage.ts";

Deno.test("processUsage reads a running process's memory and CPU; a gone pid is left out", async () => {
  const child = new Deno.Command("sh", {
    args: ["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i + 1)); done; sleep 5"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const usage = await processUsage([child.pid, 999_999_999]);
    const own = usage.get(child.pid);
    assert.ok(own, "the running shell is there");
    assert.ok(own.memory_bytes > 100_000, `${own.memory_bytes} bytes`);
    assert.ok(own.cpu_seconds >= 0);
    assert.equal(usage.has(999_999_999), false);
    assert.deepEqual(await processUsage([]), new Map());
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
  const fds = await openFileCount(Deno.pid);
  assert.ok(fds === undefined || fds >= 3, `${fds} open files`);
});
