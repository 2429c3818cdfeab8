import type { z } from "zod";
import { HttpError } from "./http_error.ts";
import { concatBytes } from "./bytes.ts";
import { parseBoundedJson } from "../protocol/bounded_json.ts";

/** Reads a request body of at most `maxBytes`: 413 when larger (by Content-Length or streaming). */
export async function readBodyBytes(
  req: Request,
  maxBytes: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const tooLarge = () =>
    new HttpError(413, "payload_too_large", `request body exceeds ${maxBytes} bytes`);
  const declared = Number(req.headers.get("content-length") ?? "NaN");
  if (declared > maxBytes) throw tooLarge();
  // a declared length is held to by the HTTP server: read it whole, natively (a chunk loop in
  // JavaScript cost a real-time audio frame a tenth of a millisecond)
  if (Number.isInteger(declared) && req.body) {
    const whole = new Uint8Array(await req.arrayBuffer());
    if (whole.length > maxBytes) throw tooLarge(); // a Request made in process may mislabel it
    return whole;
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (req.body) {
    for await (const chunk of req.body) {
      total += chunk.length;
      if (total > maxBytes) throw tooLarge();
      chunks.push(chunk);
    }
  }
  return concatBytes(chunks, total);
}

/**
 * Reads a JSON request body of at most `maxBytes`: 413 when it is larger (by Content-Length or
 * while streaming), 400 when it is not JSON.
 */
export async function readJsonBody(req: Request, maxBytes: number): Promise<unknown> {
  return jsonOf(await readBodyBytes(req, maxBytes));
}

/**
 * Parses body bytes as JSON: 400 `invalid_json` when they are empty, not JSON, or nested deeper
 * than the agent accepts (checked before parsing, so no handler walks a hostile depth).
 */
export function jsonOf(bytes: Uint8Array): unknown {
  const text = new TextDecoder().decode(bytes);
  if (text.trim() === "") throw new HttpError(400, "invalid_json", "request body is empty");
  try {
    // the body reader already held it to its byte limit: only the depth is left to check
    return parseBoundedJson(text, { maxBytes: Number.MAX_SAFE_INTEGER });
  } catch (err) {
    const why = err instanceof SyntaxError ? "is not JSON" : "is refused";
    throw new HttpError(400, "invalid_json", `request body ${why}: ${(err as Error).message}`);
  }
}

/** Checks a parsed body against `schema`: 400 `invalid_request` naming the first bad field. */
export function validBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const param = issue.path.join(".");
    throw new HttpError(
      400,
      "invalid_request",
      `${param || "body"}: ${issue.message}`,
      {},
      param || undefined,
    );
  }
  return parsed.data;
}

/**
 * Reads a JSON request body of at most `maxBytes` and checks it against `schema`: 413, 400
 * `invalid_json` or 400 `invalid_request` naming the first bad field.
 */
export async function readValidBody<T extends z.ZodType>(
  req: Request,
  maxBytes: number,
  schema: T,
): Promise<z.infer<T>> {
  return validBody(schema, await readJsonBody(req, maxBytes));
}
