/** An error that becomes an HTTP error response `{"error":{"code","message"}}`. */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Record<string, string>;
  /** The request field at fault, where there is one (OpenAI's `param`). */
  readonly param?: string;

  constructor(
    status: number,
    code: string,
    message: string,
    headers: Record<string, string> = {},
    param?: string,
  ) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.code = code;
    this.headers = headers;
    this.param = param;
  }
}

/** A JSON response: indented for people reading curl's output, unless `compact`. */
export function jsonResponse(
  body: unknown,
  status = 200,
  headers: Record<string, string> = {},
  { compact = false } = {},
) {
  return new Response(JSON.stringify(body, null, compact ? undefined : 2) + "\n", {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

/** The error body every failing route returns. */
export function errorResponse(err: HttpError): Response {
  return jsonResponse({ error: { code: err.code, message: err.message } }, err.status, err.headers);
}

/** OpenAI's error `type` for a status, which its clients map to their exception classes. */
function openAiType(status: number): string {
  switch (status) {
    case 400:
    case 404:
    case 405:
    case 409:
    case 413:
      return status === 404 ? "not_found_error" : "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 429:
      return "rate_limit_error";
    default:
      return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

/**
 * The error body of the OpenAI-compatible routes, `{"error":{"message","type","param","code"}}`,
 * as OpenAI's own clients (and LangChain, Open WebUI) parse it.
 */
export function openAiErrorResponse(err: HttpError): Response {
  return jsonResponse(
    {
      error: {
        message: err.message,
        type: openAiType(err.status),
        param: err.param ?? null,
        code: err.code,
      },
    },
    err.status,
    err.headers,
  );
}
