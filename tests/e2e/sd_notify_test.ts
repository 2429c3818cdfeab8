import assert from "node:assert/strict";
import { startAgent, tempDir } from "./harness.ts";
import { sleep } from "../../src/system/sleep.ts";

/** Where the test plays systemd (a fixed path: the test task's --allow-net names it exactly). */
const SOCKET = "/tmp/loam-test-notify.sock";

Deno.test("under systemd (NOTIFY_SOCKET) the agent says READY, STATUS, pings the watchdog, STOPPING", async () => {
  await using dir = await tempDir();
  await Deno.remove(SOCKET).catch(() => {});
  const systemd = Deno.listenDatagram({ transport: "unixpacket", path: SOCKET });
  const received: string[] = [];
  const reading = (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const [data] of systemd) received.push(decoder.decode(data));
    } catch {
      // closed at the end of the test
    }
  })();
  try {
    const agent = await startAgent(dir.path, [], {
      env: { NOTIFY_SOCKET: SOCKET, WATCHDOG_USEC: "400000" },
    });
    await sleep(700); // a few watchdog periods (200 ms each)
    const { code } = await agent.stop();
    assert.equal(code, 0);
    const ready = received.find((m) => m.startsWith("READY=1"));
    assert.ok(ready, `no READY=1 in ${JSON.stringify(received)}`);
    assert.match(ready, /^STATUS=ready: api 127\.0\.0\.1:\d+, \d+ peers, 0 active \/ 0 failed/m);
    const pings = received.filter((m) => m === "WATCHDOG=1").length;
    assert.ok(pings >= 3, `${pings} watchdog pings in 700 ms at a 400 ms watchdog`);
    assert.match(received.at(-1)!, /^STOPPING=1/);
    const ownSockets = [...Deno.readDirSync(dir.path)].filter((e) => e.name.endsWith(".sock"));
    assert.deepEqual(ownSockets, [], "the agent removes its end of the socket");
  } finally {
    systemd.close();
    await reading;
    await Deno.remove(SOCKET).catch(() => {});
  }
});
