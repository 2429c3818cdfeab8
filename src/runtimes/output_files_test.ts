import assert from "node:assert/strict";
import { join } from "node:path";
import { OutputFiles } from "./output_files.ts";
import { LogRing } from "./log_ring.ts";
import { createLogger } from "../system/logger.ts";

/** A logger that keeps the `instance output` lines it is given. */
function recording() {
  const lines: string[] = [];
  const log = createLogger({
    level: "info",
    format: "json",
    write: (text) => {
      const entry = JSON.parse(text);
      if (entry.msg === "instance output") lines.push(`${entry.stream}:${entry.line}`);
    },
  });
  return { log, lines };
}

async function append(path: string, text: string) {
  await Deno.writeTextFile(path, text, { append: true });
}

Deno.test("output files: lines of both streams reach the ring and the log; a partial line waits for its newline", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = new OutputFiles(join(dir, "bin-x"));
    await files.prepare();
    assert.equal((await Deno.stat(files.paths.stdout)).mode! & 0o777, 0o600);
    const ring = new LogRing(100);
    const { log, lines } = recording();
    await append(files.paths.stdout, "one\ntw");
    await append(files.paths.stderr, "oops\n");
    await files.read(ring, log);
    assert.deepEqual(lines, ["stdout:one", "stderr:oops"]);
    await append(files.paths.stdout, "o\n");
    await files.read(ring, log);
    assert.deepEqual(ring.tail().map((l) => `${l.stream}:${l.line}`), [
      "stdout:one",
      "stderr:oops",
      "stdout:two",
    ]);
    // prepare again (a resume) keeps what is there, and reading goes on from where it was
    await files.prepare();
    await files.read(ring, log);
    assert.equal(lines.length, 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("output files: past 4 MiB a file is emptied once read and followed on from its top", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = new OutputFiles(join(dir, "bin-x"));
    await files.prepare();
    const ring = new LogRing(10);
    const { log, lines } = recording();
    const line = `${"x".repeat(1023)}\n`;
    await append(files.paths.stdout, line.repeat(4 * 1024 + 1));
    await files.read(ring, log);
    assert.equal(lines.length, 4 * 1024 + 1);
    assert.equal((await Deno.stat(files.paths.stdout)).size, 0, "emptied after reading");
    await append(files.paths.stdout, "after\n");
    await files.read(ring, log);
    assert.equal(lines.at(-1), "stdout:after");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("output files: an adopting agent gets the last lines back into the ring, not the log, then follows", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const base = join(dir, "bin-x");
    await new OutputFiles(base).prepare();
    await append(`${base}.stdout`, "a\n".repeat(40_000) + "last before\nhalf");
    const files = new OutputFiles(base);
    const ring = new LogRing(5);
    const { log, lines } = recording();
    await files.follow(ring, log, true);
    try {
      assert.deepEqual(ring.tail(2).map((l) => l.line), ["a", "last before"]);
      assert.deepEqual(lines, []);
      await append(`${base}.stdout`, " line\nnew\n");
      const deadline = Date.now() + 5_000;
      while (lines.length < 2 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual(lines, ["stdout:half line", "stdout:new"]);
    } finally {
      await files.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
