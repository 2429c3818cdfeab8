import { z } from "zod";

/** Element types a tensor can have on the API (ONNX's names, as onnxruntime uses them). */
const TENSOR_TYPES = [
  "float32",
  "float64",
  "int8",
  "uint8",
  "int16",
  "uint16",
  "int32",
  "uint32",
  "int64",
  "uint64",
  "bool",
  "string",
] as const;

/** A tensor element type. */
export type TensorType = typeof TENSOR_TYPES[number];

/** The typed-array (or string array) holding a tensor's elements. */
export type TensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | string[];

/** A tensor in memory: element type, shape and elements. */
export interface TensorValue {
  type: TensorType;
  dims: number[];
  data: TensorData;
}

/** A tensor as JSON on the API: `{dims, type, data}` with `data` a flat list. */
const JsonTensorSchema = z.strictObject({
  dims: z.array(z.number().int().min(0)),
  type: z.enum(TENSOR_TYPES),
  /** Elements are checked against `type` as the tensor is built (one pass, not two). */
  data: z.custom<unknown[]>(Array.isArray, "expected an array"),
});

/** The JSON body of an ONNX inference request. */
export const InferBodySchema = z.strictObject({
  inputs: z.record(z.string(), JsonTensorSchema),
  /** Names of the outputs wanted; all when absent. */
  outputs: z.array(z.string()).optional(),
  priority: z.enum(["critical", "high", "normal", "low"]).optional(),
});

/** A tensor as JSON on the API. */
export type JsonTensor = z.infer<typeof JsonTensorSchema>;

/** Bad tensor input; the message names the input and what was wrong. */
export class TensorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TensorError";
  }
}

const BYTES_PER_ELEMENT: Record<Exclude<TensorType, "string">, number> = {
  float32: 4,
  float64: 8,
  int8: 1,
  uint8: 1,
  int16: 2,
  uint16: 2,
  int32: 4,
  uint32: 4,
  int64: 8,
  uint64: 8,
  bool: 1,
};

function elementCount(dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function checkCount(name: string, dims: number[], count: number): void {
  const expected = elementCount(dims);
  if (expected !== count) {
    throw new TensorError(
      `input ${name}: dims [${dims.join(",")}] hold ${expected} elements, data has ${count}`,
    );
  }
}

function toBigInt(name: string, value: unknown): bigint {
  if (typeof value !== "number" && typeof value !== "string") {
    throw new TensorError(`input ${name}: expected integers, got ${JSON.stringify(value)}`);
  }
  try {
    if (typeof value === "number" && !Number.isInteger(value)) throw new Error();
    return BigInt(value);
  } catch {
    throw new TensorError(`input ${name}: ${JSON.stringify(value)} is not an integer`);
  }
}

/** Builds a tensor from its JSON form; throws TensorError naming `name` on bad data. */
export function tensorFromJson(name: string, json: JsonTensor): TensorValue {
  const { type, dims, data } = json;
  checkCount(name, dims, data.length);
  if (type === "string") {
    if (!data.every((v) => typeof v === "string")) {
      throw new TensorError(`input ${name}: type string needs string elements`);
    }
    return { type, dims, data: data as string[] };
  }
  if (type === "int64" || type === "uint64") {
    const values = data.map((v) => toBigInt(name, v));
    return {
      type,
      dims,
      data: type === "int64" ? BigInt64Array.from(values) : BigUint64Array.from(values),
    };
  }
  // written straight into the typed array: one pass, no list in between
  const out = new NUMERIC_ARRAYS[type](data.length);
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (typeof v === "number") out[i] = v;
    else if (typeof v === "boolean" && type === "bool") out[i] = v ? 1 : 0;
    else {
      throw new TensorError(`input ${name}: type ${type} needs numbers, got ${JSON.stringify(v)}`);
    }
  }
  return { type, dims, data: out };
}

/** The typed array of each element type held as JavaScript numbers. */
const NUMERIC_ARRAYS = {
  float32: Float32Array,
  float64: Float64Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
} as const;

/**
 * Builds a tensor from raw little-endian bytes (the `application/octet-stream` and multipart
 * forms); throws TensorError when the byte count does not match the dims.
 */
export function tensorFromBytes(
  name: string,
  type: TensorType,
  dims: number[],
  bytes: Uint8Array,
): TensorValue {
  if (type === "string") {
    throw new TensorError(`input ${name}: string tensors must be sent as JSON`);
  }
  const size = BYTES_PER_ELEMENT[type];
  const expected = elementCount(dims) * size;
  if (bytes.byteLength !== expected) {
    throw new TensorError(
      `input ${name}: dims [${
        dims.join(",")
      }] of ${type} need ${expected} bytes, got ${bytes.byteLength}`,
    );
  }
  const copy = bytes.slice().buffer; // aligned, and owned by the tensor
  const data: TensorData = {
    float32: () => new Float32Array(copy),
    float64: () => new Float64Array(copy),
    int8: () => new Int8Array(copy),
    uint8: () => new Uint8Array(copy),
    bool: () => new Uint8Array(copy),
    int16: () => new Int16Array(copy),
    uint16: () => new Uint16Array(copy),
    int32: () => new Int32Array(copy),
    uint32: () => new Uint32Array(copy),
    int64: () => new BigInt64Array(copy),
    uint64: () => new BigUint64Array(copy),
  }[type]();
  return { type, dims, data };
}

/** Parses a dims header such as `1,4` (or `1x4`); throws TensorError naming the header. */
export function parseDims(header: string, text: string | null): number[] {
  if (text === null) throw new TensorError(`missing header ${header} (e.g. "1,16000")`);
  if (text.trim() === "") return []; // a scalar
  const parts = text.split(/[,x]/).map((s) => s.trim());
  if (parts.some((p) => !/^\d+$/.test(p))) {
    throw new TensorError(
      `${header}: expected comma-separated sizes such as "1,16000", got "${text}"`,
    );
  }
  return parts.map(Number);
}

/** Parses a tensor type name; throws TensorError listing the known ones. */
export function parseTensorType(header: string, text: string | null): TensorType {
  const type = (text ?? "").trim() as TensorType;
  if (!TENSOR_TYPES.includes(type)) {
    throw new TensorError(`${header}: expected one of ${TENSOR_TYPES.join(", ")}, got "${text}"`);
  }
  return type;
}

/** The JSON form of an output tensor; 64-bit integers become numbers when exact, else strings. */
export function tensorToJson(tensor: TensorValue): JsonTensor {
  let data: (number | string | boolean)[];
  if (tensor.data instanceof BigInt64Array || tensor.data instanceof BigUint64Array) {
    data = Array.from(
      tensor.data,
      (v) =>
        v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER)
          ? Number(v)
          : v.toString(),
    );
  } else if (Array.isArray(tensor.data)) {
    data = tensor.data;
  } else if (tensor.type === "bool") {
    data = Array.from(tensor.data as Uint8Array, (v) => v !== 0);
  } else {
    data = Array.from(tensor.data as ArrayLike<number>);
  }
  return { dims: tensor.dims, type: tensor.type, data };
}

/** The raw little-endian bytes of a numeric tensor (for `application/octet-stream` answers). */
export function tensorBytes(tensor: TensorValue): Uint8Array {
  if (Array.isArray(tensor.data)) {
    throw new TensorError("string tensors have no binary form; ask for JSON");
  }
  return new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
}
