/**
 * Runs the test command given as arguments (see the `test` task), passing its output through,
 * then prints Deno's summary as one plain line `N passed, N failed[, N skipped]` for CI.
 * @module
 */

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

const [program, ...args] = Deno.args;
if (program === undefined) {
  console.error(
    "usage: deno run --allow-run=<program> tasks/summarize_tests.ts <program> [args...]",
  );
  Deno.exit(2);
}
const child = new Deno.Command(program, { args, stdout: "piped", stderr: "inherit" }).spawn();
let tail = "";
const decoder = new TextDecoder();
for await (const chunk of child.stdout) {
  await Deno.stdout.write(chunk);
  tail = (tail + decoder.decode(chunk, { stream: true })).slice(-4096);
}
const { code } = await child.status;
// the last summary: a test may print a nested run's summary before Deno's own
const summary = [
  ...tail.replace(ANSI, "").matchAll(
    /(?:ok|FAILED) \| (\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed(?: \((\d+) steps?\))?(?: \| (\d+) ignored)?/g,
  ),
].at(-1);
if (summary) {
  const [, passed, , failed, , ignored] = summary;
  console.log(
    `${passed} passed, ${failed} failed${Number(ignored ?? 0) > 0 ? `, ${ignored} skipped` : ""}`,
  );
} else {
  console.log(`0 passed, 1 failed`);
  console.error(
    "tasks/summarize_tests.ts: no test summary found in the output (the test run crashed?)",
  );
}
Deno.exit(code === 0 && summary ? 0 : code || 1);
