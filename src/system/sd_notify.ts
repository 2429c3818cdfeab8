import { join } from "node:path";
import type { Logger } from "./logger.ts";

/** Talks to systemd when it started the agent (`Type=notify`); does nothing otherwise. */
export interface ServiceNotifier {
  /** `READY=1` with a status line; starts the watchdog pings when systemd asked for them. */
  ready(status: string): Promise<void>;
  /** A `STATUS=` line (shown by `systemctl status`). */
  status(text: string): Promise<void>;
  /** `STOPPING=1`, and the watchdog pings end. */
  stopping(): Promise<void>;
}

const NOOP: ServiceNotifier = {
  ready: () => Promise.resolve(),
  status: () => Promise.resolve(),
  stopping: () => Promise.resolve(),
};

/**
 * The sd_notify protocol over `$NOTIFY_SOCKET` (a unix datagram socket), with `WATCHDOG=1` at
 * half of `$WATCHDOG_USEC`. Our end of the socket is bound in `runDir` (needs a writable
 * directory: the data dir). An abstract socket (`@...`) goes through `systemd-notify --pid`.
 */
export function createServiceNotifier(runDir: string, logger: Logger): ServiceNotifier {
  const target = Deno.env.get("NOTIFY_SOCKET");
  if (!target) return NOOP;
  const watchdogUsec = Number(Deno.env.get("WATCHDOG_USEC") ?? "0");
  const watchdogPid = Deno.env.get("WATCHDOG_PID");
  const watchdogForUs = !watchdogPid || Number(watchdogPid) === Deno.pid;
  let conn: Deno.DatagramConn | undefined;
  let ownPath: string | undefined;
  let timer: ReturnType<typeof setInterval> | undefined;
  const encoder = new TextEncoder();

  const send = async (message: string): Promise<void> => {
    try {
      if (target.startsWith("@")) {
        const lines = message.split("\n");
        await new Deno.Command("systemd-notify", {
          args: [`--pid=${Deno.pid}`, ...lines],
          stdout: "null",
          stderr: "null",
        }).output();
        return;
      }
      if (!conn) {
        ownPath = join(runDir, `notify-${Deno.pid}.sock`);
        await Deno.remove(ownPath).catch(() => {});
        conn = Deno.listenDatagram({ transport: "unixpacket", path: ownPath });
      }
      await conn.send(encoder.encode(message), { transport: "unixpacket", path: target });
    } catch (err) {
      logger.warn("systemd notification not sent", { socket: target, error: err });
    }
  };

  return {
    async ready(status) {
      await send(`READY=1\nSTATUS=${status}\nMAINPID=${Deno.pid}`);
      if (watchdogUsec > 0 && watchdogForUs) {
        const everyMs = Math.max(100, watchdogUsec / 1000 / 2);
        timer = setInterval(() => send("WATCHDOG=1"), everyMs);
        await send("WATCHDOG=1");
      }
    },
    status: (text) => send(`STATUS=${text}`),
    async stopping() {
      clearInterval(timer);
      await send("STOPPING=1\nSTATUS=stopping");
      conn?.close();
      if (ownPath) await Deno.remove(ownPath).catch(() => {});
    },
  };
}
