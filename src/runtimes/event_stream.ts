import { JobRejected } from "./job_queue.ts";

/**
 * A server-sent-events response fed by `produce`: each `send` is one `data:` event. The
 * response starts with the first event, so a job refused before it (queue full, timeout) is
 * still an HTTP error status. When the client goes away, `cancelled` aborts the generation.
 */
export function eventStream(
  produce: (send: (data: unknown) => void, cancelled: AbortSignal) => Promise<void>,
): Promise<Response> {
  const cancelled = new AbortController();
  const encoder = new TextEncoder();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    cancel() {
      cancelled.abort(new JobRejected("cancelled", "the client went away"));
    },
  });
  const response = new Response(body, {
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" },
  });
  return new Promise<Response>((resolve, reject) => {
    let started = false;
    const start = () => {
      if (!started) resolve(response);
      started = true;
    };
    const send = (data: unknown) => {
      if (cancelled.signal.aborted) return;
      start();
      const text = typeof data === "string" ? data : JSON.stringify(data);
      controller.enqueue(encoder.encode(`data: ${text}\n\n`));
    };
    produce(send, cancelled.signal).then(
      () => {
        start();
        controller.close();
      },
      (err) => {
        if (!started) {
          started = true;
          reject(err);
          return;
        }
        if (!cancelled.signal.aborted) {
          const code = err instanceof JobRejected ? err.code : "generation_failed";
          send({ error: { code, message: (err as Error).message } });
          controller.close();
        }
      },
    );
  });
}
