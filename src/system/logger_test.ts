import assert from "node:assert/strict";
import { createLogger } from "./logger.ts";

Deno.test("logger writes JSON or human lines and filters by level", () => {
  const lines: string[] = [];
  const json = createLogger({ level: "info", format: "json", write: (l) => lines.push(l) });
  json.debug("hidden");
  json.child({ component: "api" }).warn("slow", { ms: 12, error: new Error("boom") });
  assert.equal(lines.length, 1);
  const rec = JSON.parse(lines[0]!);
  assert.deepEqual({ ...rec, ts: undefined }, {
    ts: undefined,
    level: "warn",
    msg: "slow",
    component: "api",
    ms: 12,
    error: "boom",
  });

  const human: string[] = [];
  createLogger({ level: "debug", format: "human", write: (l) => human.push(l) })
    .debug("peer seen", { addr: "1.2.3.4", note: "two words" });
  assert.match(human[0]!, /^\S+Z DEBUG peer seen addr=1\.2\.3\.4 note="two words"\n$/);
});
