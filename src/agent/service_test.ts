import assert from "node:assert/strict";
import { type Service, startInOrder } from "./service.ts";
import { createLogger } from "../system/logger.ts";

const logger = createLogger({ level: "error", format: "json" });

/** A service that writes what happens to it into `events`, failing to start when told. */
function recorded(name: string, events: string[], failStart = false): Service {
  return {
    name,
    start: () => {
      events.push(`start ${name}`);
      return failStart ? Promise.reject(new Error(`${name} cannot start`)) : Promise.resolve();
    },
    stop: () => {
      events.push(`stop ${name}`);
      return Promise.resolve();
    },
  };
}

Deno.test("services start in order and stop in reverse", async () => {
  const events: string[] = [];
  const stopAll = await startInOrder(["a", "b", "c"].map((n) => recorded(n, events)), logger);
  await stopAll();
  await stopAll(); // a second stop stops nothing twice
  assert.deepEqual(events, ["start a", "start b", "start c", "stop c", "stop b", "stop a"]);
});

Deno.test("a failed start stops the services already started, in reverse, and rethrows", async () => {
  const events: string[] = [];
  const services = [recorded("a", events), recorded("b", events), recorded("c", events, true)];
  services.push(recorded("d", events));
  await assert.rejects(startInOrder(services, logger), /c cannot start/);
  assert.deepEqual(events, ["start a", "start b", "start c", "stop b", "stop a"]);
});

Deno.test("a service that fails to stop does not keep the others from stopping", async () => {
  const events: string[] = [];
  const stuck: Service = { ...recorded("b", events), stop: () => Promise.reject(new Error("no")) };
  const stopAll = await startInOrder([recorded("a", events), stuck], logger);
  await stopAll();
  assert.deepEqual(events, ["start a", "start b", "stop a"]);
});
