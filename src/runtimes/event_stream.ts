import { JobRejected } from "./job_queue.ts";

/** How each sent value is framed: a server-sent `data:` event, or one line of NDJSON (Ollama). */
export type StreamFraming = "sse" | "ndjson";

const FRAMINGS = {
  sse: { type: "text/event-stream; charset=utf-8", frame: (text: string) => `data: ${text}\n\n` },
  ndjson: { type: "application/x-ndjson", frame: (text: string) => `${text}\n` },
};

/**
 * A streamed response fed by `produce`: each `send` is one event (`framing`: server-sent events
 * by default, or NDJSON). The response starts with the first event, so a job refused before it
 * (queue full, timeout) is still an HTTP error status. When the client goes away, `cancelled`
 * aborts the generation.
 */
export function eventStream(
  produce: (send: (data: unknown) => void, cancelled: AbortSignal) => Promise<void>,
  framing: StreamFraming = "sse",
): Promise<Response> {
  const { type, frame } = FRAMINGS[framing];
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
    headers: { "content-type": type, "cache-control": "no-cache" },
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
      controller.enqueue(encoder.encode(frame(text)));
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
