import { HttpError } from "../system/http_error.ts";
import { JobRejected } from "./job_queue.ts";

/**
 * Runs an inference handler, turning a refused job into its HTTP answer: 429 with Retry-After
 * (queue full), 504 (time limit), 503 (instance going away or client gone).
 */
export async function answerJobErrors(work: () => Promise<Response>): Promise<Response> {
  try {
    return await work();
  } catch (err) {
    if (!(err instanceof JobRejected)) throw err;
    switch (err.code) {
      case "queue_full":
        throw new HttpError(429, "queue_full", err.message, {
          "retry-after": String(err.retryAfterSeconds ?? 1),
        });
      case "timeout":
        throw new HttpError(504, "timeout", err.message);
      case "cancelled":
      case "closed":
        throw new HttpError(503, "unavailable", err.message);
    }
  }
}
