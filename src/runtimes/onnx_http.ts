import { getMultipartBoundary, parseMultipart } from "@remix-run/multipart-parser";
import { HttpError, jsonResponse } from "../system/http_error.ts";
import { jsonOf, readBodyBytes, validBody } from "../system/http_body.ts";
import type { JobPriority } from "./job_queue.ts";
import { JOB_PRIORITIES } from "./job_queue.ts";
import type { OnnxInference, TensorSpec } from "./onnx_model.ts";
import {
  InferBodySchema,
  parseDims,
  parseTensorType,
  tensorBytes,
  TensorError,
  tensorFromBytes,
  tensorFromJson,
  tensorToJson,
  type TensorType,
  type TensorValue,
} from "./tensors.ts";

/** Headers of the binary forms. */
const TENSOR_HEADERS = {
  input: "x-loam-input",
  dims: "x-loam-dims",
  type: "x-loam-type",
  output: "x-loam-output",
  priority: "x-loam-priority",
} as const;

function priorityFrom(text: string | null | undefined): JobPriority | undefined {
  if (text === null || text === undefined) return undefined;
  if (!(JOB_PRIORITIES as readonly string[]).includes(text)) {
    throw new HttpError(
      400,
      "invalid_request",
      `priority: expected one of ${JOB_PRIORITIES.join(", ")}, got "${text}"`,
    );
  }
  return text as JobPriority;
}

function defaultType(spec: TensorSpec | undefined, header: string, text: string | null) {
  if (text === null && spec && spec.type !== "non-tensor") return spec.type as TensorType;
  return parseTensorType(header, text);
}

interface ParsedRequest {
  inputs: Record<string, TensorValue>;
  outputs?: string[];
  priority?: JobPriority;
}

/** One raw tensor in the body; dims and type in headers (type defaults to the model's). */
function parseOctetStream(req: Request, bytes: Uint8Array, model: OnnxInference): ParsedRequest {
  const named = req.headers.get(TENSOR_HEADERS.input);
  if (named === null && model.inputs.length !== 1) {
    throw new TensorError(
      `the model has ${model.inputs.length} inputs (${model.inputs.map((i) => i.name)}): name ` +
        `one with ${TENSOR_HEADERS.input}, or send multipart/form-data or JSON`,
    );
  }
  const name = named ?? model.inputs[0]!.name;
  const spec = model.inputs.find((i) => i.name === name);
  const type = defaultType(spec, TENSOR_HEADERS.type, req.headers.get(TENSOR_HEADERS.type));
  const dims = parseDims(TENSOR_HEADERS.dims, req.headers.get(TENSOR_HEADERS.dims));
  return { inputs: { [name]: tensorFromBytes(name, type, dims, bytes) } };
}

/** Longest header block of one multipart part. */
const MAX_PART_HEADER_BYTES = 8 * 1024;

/**
 * Parts named by input; `<name>.dims` and `<name>.type` fields say their shape and type. Parsed
 * with @remix-run/multipart-parser: Deno's `formData()` took a millisecond for a VAD frame's
 * four small parts, three times the model.
 */
function parseFormParts(req: Request, bytes: Uint8Array, model: OnnxInference): ParsedRequest {
  const boundary = getMultipartBoundary(req.headers.get("content-type") ?? "");
  if (!boundary) throw new TensorError("multipart body does not parse: no boundary");
  const files = new Map<string, Uint8Array>();
  const fields = new Map<string, string>();
  try {
    for (
      const part of parseMultipart(bytes, {
        boundary,
        maxHeaderSize: MAX_PART_HEADER_BYTES,
        maxFileSize: bytes.length,
      })
    ) {
      const name = part.name ?? "";
      if (part.isFile) files.set(name, part.bytes);
      else if (!fields.has(name)) fields.set(name, part.text);
    }
  } catch (err) {
    throw new TensorError(`multipart body does not parse: ${(err as Error).message}`);
  }
  const inputs: Record<string, TensorValue> = {};
  for (const [name, data] of files) {
    if (name.endsWith(".dims") || name.endsWith(".type")) continue;
    const spec = model.inputs.find((i) => i.name === name);
    const type = defaultType(spec, `${name}.type`, fields.get(`${name}.type`) ?? null);
    const dims = parseDims(`${name}.dims`, fields.get(`${name}.dims`) ?? null);
    inputs[name] = tensorFromBytes(name, type, dims, data);
  }
  return { inputs, priority: priorityFrom(fields.get("priority")) };
}

function parseJson(bytes: Uint8Array): ParsedRequest {
  const body = validBody(InferBodySchema, jsonOf(bytes));
  const inputs: Record<string, TensorValue> = {};
  for (const [name, json] of Object.entries(body.inputs)) {
    inputs[name] = tensorFromJson(name, json);
  }
  return { inputs, outputs: body.outputs, priority: body.priority };
}

/**
 * Answers `POST /v1/instances/{id}/infer` for an ONNX instance. Input forms: JSON
 * `{inputs: {name: {dims, type, data}}, outputs?, priority?}`; `application/octet-stream` (one
 * tensor, dims/type in `x-loam-*` headers); `multipart/form-data` (a part per input). The
 * answer is JSON, or one raw tensor when the client accepts `application/octet-stream`.
 */
export async function inferOnnx(
  req: Request,
  model: OnnxInference,
  client: string,
  maxBytes: number,
): Promise<Response> {
  const contentType = (req.headers.get("content-type") ?? "").toLowerCase();
  const bytes = await readBodyBytes(req, maxBytes);
  let parsed: ParsedRequest;
  try {
    if (contentType.startsWith("application/octet-stream")) {
      parsed = parseOctetStream(req, bytes, model);
    } else if (contentType.startsWith("multipart/form-data")) {
      parsed = parseFormParts(req, bytes, model);
    } else {
      parsed = parseJson(bytes); // JSON whatever the label (curl -d says form-urlencoded)
    }
  } catch (err) {
    if (err instanceof TensorError) throw new HttpError(400, "invalid_input", err.message);
    throw err;
  }
  const priority = parsed.priority ?? priorityFrom(req.headers.get(TENSOR_HEADERS.priority));
  const wantsBinary = (req.headers.get("accept") ?? "").includes("application/octet-stream");
  const binaryOutput = req.headers.get(TENSOR_HEADERS.output) ?? undefined;
  const outputs = binaryOutput && wantsBinary ? [binaryOutput] : parsed.outputs;
  const started = performance.now();
  let results: Record<string, TensorValue>;
  try {
    results = await model.run({ client, priority, signal: req.signal }, parsed.inputs, outputs);
  } catch (err) {
    if (err instanceof TensorError) throw new HttpError(400, "invalid_input", err.message);
    throw err;
  }
  const latencyMs = Math.round((performance.now() - started) * 1000) / 1000;
  // the model's share of the agent's time (queue wait included), beside the router's total
  const timing = { "server-timing": `model;dur=${latencyMs}` };
  if (wantsBinary) {
    const [name, tensor] = Object.entries(results)[0]!;
    if (Object.keys(results).length > 1 && !binaryOutput) {
      throw new HttpError(
        406,
        "not_acceptable",
        `the model has ${
          Object.keys(results).length
        } outputs: name one with ${TENSOR_HEADERS.output} for a binary answer`,
      );
    }
    if (tensor.type === "string") {
      throw new HttpError(406, "not_acceptable", `output ${name} is a string tensor: ask for JSON`);
    }
    return new Response(tensorBytes(tensor).slice(), {
      headers: {
        "content-type": "application/octet-stream",
        [TENSOR_HEADERS.output]: name,
        [TENSOR_HEADERS.dims]: tensor.dims.join(","),
        [TENSOR_HEADERS.type]: tensor.type,
        ...timing,
      },
    });
  }
  const out: Record<string, ReturnType<typeof tensorToJson>> = {};
  for (const [name, tensor] of Object.entries(results)) out[name] = tensorToJson(tensor);
  // compact: tensors are for programs, and indenting one costs more than the model on a VAD frame
  return jsonResponse(
    { outputs: out, provider: model.provider, latency_ms: latencyMs },
    200,
    timing,
    { compact: true },
  );
}
