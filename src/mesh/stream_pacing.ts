/**
 * Back-pressure on libp2p streams, both ways. libp2p 3's own helpers have none that holds:
 * - `stream.onDrain()` (@libp2p/utils 7.4.1) keeps its first, resolved promise, so after the
 *   first drain it returns at once and a sender queues a whole blob in memory (a 512 MiB
 *   transfer left the serving agent at ~500 MiB RSS);
 * - a stream's async iterator buffers every message without pausing the stream, so a reader
 *   slower than the network (hashing and writing to disk) queues the rest in memory.
 * @module
 */
import type { MessageStream } from "@libp2p/interface";
import { pEvent } from "p-event";
import { pushable } from "it-pushable";

/**
 * Sends `chunk`, then, when the stream reports its buffers full, waits for its 'drain' event
 * (rejecting when the stream closes first).
 */
export async function sendPaced(stream: MessageStream, chunk: Uint8Array): Promise<void> {
  if (stream.send(chunk)) return;
  await pEvent(stream, "drain", { rejectionEvents: ["close"] });
}

/** Whether more bytes can still arrive: pause() and resume() throw once they cannot. */
function readable(stream: MessageStream): boolean {
  return stream.status === "open" && !stream.readableEnded;
}

/**
 * The stream's bytes as an async iterable that pauses the stream (yamux stops granting send
 * window, so the sender waits) while more than `highWater` bytes wait for the consumer, and
 * resumes it once they are down to half. It listens from this call on, so nothing piles up in
 * the stream before the first read. Ends with the stream's readable side ('end'); a stream
 * closed with an error throws it.
 */
export function pacedChunks(stream: MessageStream, highWater: number): AsyncGenerator<Uint8Array> {
  const queue = pushable();
  let paused = false;
  const onMessage = (evt: { data: Uint8Array | Iterable<Uint8Array> }) => {
    if (evt.data instanceof Uint8Array) queue.push(evt.data);
    else for (const buffer of evt.data) queue.push(buffer);
    if (queue.readableLength > highWater && !paused) {
      paused = true;
      // Not from inside this handler: resume() delivers the buffered bytes to it first and
      // re-opens the yamux window after, which would undo a pause made here; the stream then
      // stays "paused" with the window open, and overflows its read buffer.
      queueMicrotask(() => {
        if (paused && readable(stream)) stream.pause();
      });
    }
  };
  const onClose = (evt: { error?: Error }) => queue.end(evt.error);
  const onEnd = () => queue.end();
  stream.addEventListener("message", onMessage);
  stream.addEventListener("close", onClose);
  stream.addEventListener("end", onEnd);
  // the stream may have ended before anyone listened (a small blob, all read ahead)
  if (stream.readableEnded) queue.end();
  return (async function* () {
    try {
      for await (const chunk of queue) {
        yield chunk;
        if (paused && queue.readableLength <= highWater / 2) {
          paused = false;
          // a stream that ended meanwhile cannot resume; its end or error arrives as an event
          if (readable(stream)) stream.resume();
        }
      }
    } finally {
      stream.removeEventListener("message", onMessage);
      stream.removeEventListener("close", onClose);
      stream.removeEventListener("end", onEnd);
    }
  })();
}
