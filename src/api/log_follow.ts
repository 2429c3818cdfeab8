import type { LogLine } from "../runtimes/log_ring.ts";

/** How often a followed log is read again for new lines. */
const POLL_MS = 500;

const same = (a: LogLine, b: LogLine) =>
  a.at === b.at && a.stream === b.stream && a.line === b.line;

/**
 * The lines of `lines` that come after `last`, the newest line already sent: those after its
 * last occurrence, or, when it has rotated out of the tail, those stamped later.
 */
export function linesAfter(lines: LogLine[], last: LogLine | undefined): LogLine[] {
  if (!last) return lines;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (same(lines[i]!, last)) return lines.slice(i + 1);
  }
  return lines.filter((l) => l.at > last.at);
}

/**
 * A followed log as server-sent events, like `docker logs -f`: `first` at once, then each new
 * line `read` finds (one `data:` event per line, JSON `{at, stream, line}`), until `stop`
 * aborts (the client left, or the agent is stopping) or the instance is gone (`read` gives
 * undefined). Reading polls, so an adapter needs nothing but its `logs()` for this.
 */
export function followLog(
  first: LogLine[],
  read: () => Promise<LogLine[] | undefined>,
  stop: AbortSignal,
): Response {
  const encoder = new TextEncoder();
  let last = first.at(-1);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      const send = (lines: LogLine[]) => {
        for (const line of lines) {
          controller.enqueue(encoder.encode(`data: ${JSON.stringify(line)}\n\n`));
        }
        last = lines.at(-1) ?? last;
      };
      const end = () => {
        clearTimeout(timer);
        try {
          controller.close();
        } catch {
          // already closed by a cancel
        }
      };
      const poll = async () => {
        if (stop.aborted) return end();
        const lines = await read().catch(() => undefined);
        if (stop.aborted) return end();
        if (lines === undefined) return end();
        send(linesAfter(lines, last));
        timer = setTimeout(poll, POLL_MS);
      };
      send(first);
      stop.addEventListener("abort", end, { once: true });
      timer = setTimeout(poll, POLL_MS);
    },
    cancel() {
      clearTimeout(timer);
    },
  });
  return new Response(body, {
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" },
  });
}
