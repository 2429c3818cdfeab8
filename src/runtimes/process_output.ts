import type { LogLine, LogRing } from "./log_ring.ts";
import type { Logger } from "../system/logger.ts";

/**
 * Reads a workload process's stdout and stderr line by line into its log ring and the agent log
 * (`instance output`); resolves when both streams end.
 */
export async function captureOutput(
  child: Deno.ChildProcess,
  logs: LogRing,
  log: Logger,
): Promise<void> {
  const pump = async (stream: ReadableStream<Uint8Array>, name: LogLine["stream"]) => {
    let buffer = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      buffer += text;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        logs.push(name, line);
        log.info("instance output", { stream: name, line });
      }
    }
    if (buffer) logs.push(name, buffer);
  };
  await Promise.all([pump(child.stdout, "stdout"), pump(child.stderr, "stderr")]);
}
