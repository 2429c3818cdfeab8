import assert from "node:assert/strict";
import { testRouter } from "../../../tests/fixtures/test_router.ts";
import { instanceRoutes } from "./instances.ts";
import { LogRing } from "../../runtimes/log_ring.ts";
import { sleep } from "../../system/sleep.ts";

/** The instance routes over one instance `a` whose log is `ring`. */
function logsRouter(ring: LogRing, closing: AbortSignal) {
  return testRouter(() =>
    instanceRoutes({
      instances: () => [],
      instanceLogs: (id, lines) => Promise.resolve(id === "a" ? ring.tail(lines) : undefined),
      closing,
      usage: () => Promise.resolve(new Map()),
    })
  );
}

Deno.test("logs: lines and since select, an unknown or malformed parameter is a 400 naming it", async () => {
  const ring = new LogRing(100);
  ring.push("stdout", "old");
  await sleep(20);
  const cut = new Date().toISOString();
  await sleep(5);
  ring.push("stdout", "new 1");
  ring.push("stderr", "new 2");
  await using api = await logsRouter(ring, new AbortController().signal);
  const token = await api.token(["status:read"]);
  const get = async (query: string) => {
    const response = await api.request(`/v1/instances/a/logs${query}`, { token });
    return { status: response.status, body: await response.json() };
  };
  const text = (body: { lines: { line: string }[] }) => body.lines.map((l) => l.line);
  assert.deepEqual(text((await get("")).body), ["old", "new 1", "new 2"]);
  assert.deepEqual(text((await get("?lines=1")).body), ["new 2"]);
  assert.deepEqual(text((await get(`?since=${cut}`)).body), ["new 1", "new 2"]);
  assert.deepEqual(text((await get(`?since=${cut}&lines=1`)).body), ["new 2"]);
  for (
    const [query, param] of [["?tail=5", "tail"], ["?since=yesterday", "since"], [
      "?lines=0",
      "lines",
    ], ["?follow=maybe", "follow"]]
  ) {
    const { status, body } = await get(query!);
    assert.equal(status, 400, query);
    assert.match(body.error.message, new RegExp(`^${param}: `), query);
  }
  const missing = await api.request("/v1/instances/b/logs", { token });
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
});

Deno.test("logs: follow=1 streams the tail, then each new line, until the agent stops", async () => {
  const ring = new LogRing(100);
  ring.push("stdout", "first");
  const closing = new AbortController();
  await using api = await logsRouter(ring, closing.signal);
  const token = await api.token(["status:read"]);
  const response = await api.request("/v1/instances/a/logs?follow=1", { token });
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const until = async (pattern: RegExp) => {
    const deadline = Date.now() + 5000;
    while (!pattern.test(text) && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    assert.match(text, pattern);
  };
  await until(/"line":"first"/);
  ring.push("stdout", "second");
  ring.push("stderr", "third");
  await until(/"line":"third"/);
  const events = text.split("\n\n").filter((e) => e.startsWith("data: "));
  assert.deepEqual(events.map((e) => JSON.parse(e.slice(6)).line), ["first", "second", "third"]);
  closing.abort();
  const deadline = Date.now() + 5000;
  let done = false;
  while (!done && Date.now() < deadline) done = (await reader.read()).done;
  assert.ok(done, "the stream ends when the agent stops");
});
