/**
 * A structural check of a GGUF file, in TypeScript, before llama.cpp opens it: llama.cpp and
 * node-llama-cpp parse it in native code inside the agent process, and `deno task fuzz` found
 * corrupt headers (a mutated count or version) that made that parse spin for minutes eating
 * memory. This walks the header the way llama.cpp's gguf reader does, with every count, length
 * and offset checked against the file's size and sane limits, so a corrupt file is refused
 * with a reason in milliseconds and the native parser only ever sees a consistent one.
 * @module
 */

/** GGUF value types (gguf.h). */
const T = {
  U8: 0,
  I8: 1,
  U16: 2,
  I16: 3,
  U32: 4,
  I32: 5,
  F32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  U64: 10,
  I64: 11,
  F64: 12,
} as const;

const FIXED_SIZES: Record<number, number> = {
  [T.U8]: 1,
  [T.I8]: 1,
  [T.U16]: 2,
  [T.I16]: 2,
  [T.U32]: 4,
  [T.I32]: 4,
  [T.F32]: 4,
  [T.BOOL]: 1,
  [T.U64]: 8,
  [T.I64]: 8,
  [T.F64]: 8,
};

/**
 * Bytes per block and elements per block of the ggml tensor types whose layout is settled
 * (ggml.c's type traits); a tensor of another type is only checked to start inside the file.
 */
const TENSOR_BLOCKS: Record<number, [bytes: number, elements: number]> = {
  0: [4, 1], // F32
  1: [2, 1], // F16
  2: [18, 32], // Q4_0
  3: [20, 32], // Q4_1
  6: [22, 32], // Q5_0
  7: [24, 32], // Q5_1
  8: [34, 32], // Q8_0
  9: [36, 32], // Q8_1
  10: [84, 256], // Q2_K
  11: [110, 256], // Q3_K
  12: [144, 256], // Q4_K
  13: [176, 256], // Q5_K
  14: [210, 256], // Q6_K
  15: [292, 256], // Q8_K
  24: [1, 1], // I8
  25: [2, 1], // I16
  26: [4, 1], // I32
  27: [8, 1], // I64
  28: [8, 1], // F64
  30: [2, 1], // BF16
};

/** Limits far above any real model's header and far below what could exhaust a node. */
const MAX_TENSORS = 1 << 20;
const MAX_KEYS = 1 << 20;
const MAX_ARRAY = 1 << 26;
const MAX_STRING = 64 * 1024 * 1024;
const MAX_DIMS = 4;
const MAX_HEADER_BYTES = 512 * 1024 * 1024;
const DEFAULT_ALIGNMENT = 32;
const CHUNK = 1024 * 1024;

/** Reads a file front to back in chunks, knowing its size; never past `MAX_HEADER_BYTES`. */
class Cursor {
  readonly size: number;
  readonly #file: Deno.FsFile;
  #buffer = new Uint8Array(0);
  #bufferAt = 0;
  position = 0;

  constructor(file: Deno.FsFile, size: number) {
    this.#file = file;
    this.size = size;
  }

  /** The next `n` bytes; refuses to read past the end of the file or the header limit. */
  async take(n: number, what: string): Promise<Uint8Array> {
    await this.skip(n, what);
    const start = this.position - n;
    if (start < this.#bufferAt || this.position > this.#bufferAt + this.#buffer.length) {
      await this.#file.seek(start, Deno.SeekMode.Start);
      const want = Math.max(n, Math.min(CHUNK, this.size - start));
      const buffer = new Uint8Array(want);
      let got = 0;
      while (got < want) {
        const read = await this.#file.read(buffer.subarray(got));
        if (read === null) break;
        got += read;
      }
      this.#buffer = buffer.subarray(0, got);
      this.#bufferAt = start;
    }
    return this.#buffer.subarray(start - this.#bufferAt, this.position - this.#bufferAt);
  }

  /** Moves past `n` bytes without reading them. */
  skip(n: number, what: string): Promise<void> {
    if (!Number.isSafeInteger(n) || n < 0 || this.position + n > this.size) {
      throw new Error(`${what} runs past the end of the file (${this.size} bytes)`);
    }
    if (this.position + n > MAX_HEADER_BYTES) {
      throw new Error(`${what}: the header is larger than ${MAX_HEADER_BYTES} bytes`);
    }
    this.position += n;
    return Promise.resolve();
  }

  async u32(what: string): Promise<number> {
    const b = await this.take(4, what);
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
  }

  /** A u64 as a number; refuses values past 2^53 (no file field needs them). */
  async u64(what: string): Promise<number> {
    const b = await this.take(8, what);
    const value = new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${what} ${value} is too large`);
    return Number(value);
  }

  async string(what: string): Promise<string> {
    const length = await this.u64(`${what} length`);
    if (length > MAX_STRING) throw new Error(`${what} is ${length} bytes long`);
    return new TextDecoder().decode(await this.take(length, what));
  }
}

async function skipValue(c: Cursor, type: number, what: string, inArray = false): Promise<void> {
  const fixed = FIXED_SIZES[type];
  if (fixed !== undefined) return await c.skip(fixed, what);
  if (type === T.STRING) {
    const length = await c.u64(`${what} length`);
    if (length > MAX_STRING) throw new Error(`${what} is ${length} bytes long`);
    return await c.skip(length, what);
  }
  if (type === T.ARRAY && !inArray) {
    const elementType = await c.u32(`${what} element type`);
    const count = await c.u64(`${what} count`);
    if (count > MAX_ARRAY) throw new Error(`${what} has ${count} elements`);
    const size = FIXED_SIZES[elementType];
    if (size !== undefined) return await c.skip(count * size, what);
    for (let i = 0; i < count; i++) await skipValue(c, elementType, `${what}[${i}]`, true);
    return;
  }
  throw new Error(`${what} has value type ${type}, which GGUF does not define here`);
}

/**
 * Checks the GGUF file at `path`: magic, version 2 or 3, key/value section, tensor table (at
 * most 4 dimensions, known types' sizes), and every tensor's data inside the file at the
 * file's alignment. Throws an Error saying what is wrong.
 */
export async function checkGgufFile(path: string): Promise<void> {
  using file = await Deno.open(path);
  const c = new Cursor(file, (await file.stat()).size);
  const magic = new TextDecoder().decode(await c.take(4, "magic"));
  if (magic !== "GGUF") throw new Error(`not a GGUF file (starts with ${JSON.stringify(magic)})`);
  const version = await c.u32("version");
  if (version !== 2 && version !== 3) throw new Error(`GGUF version ${version} (2 or 3 expected)`);
  const tensors = await c.u64("tensor count");
  const keys = await c.u64("key count");
  if (tensors > MAX_TENSORS) throw new Error(`tensor count ${tensors} is not plausible`);
  if (keys > MAX_KEYS) throw new Error(`key count ${keys} is not plausible`);
  let alignment = DEFAULT_ALIGNMENT;
  for (let i = 0; i < keys; i++) {
    const key = await c.string(`key ${i}`);
    const type = await c.u32(`type of ${key}`);
    if (key === "general.alignment" && type === T.U32) {
      alignment = await c.u32(key);
      if (alignment === 0 || (alignment & (alignment - 1)) !== 0) {
        throw new Error(`general.alignment ${alignment} is not a power of two`);
      }
    } else {
      await skipValue(c, type, `value of ${JSON.stringify(key.slice(0, 80))}`);
    }
  }
  const table: { name: string; offset: number; bytes?: number }[] = [];
  for (let i = 0; i < tensors; i++) {
    const name = await c.string(`tensor ${i} name`);
    const what = `tensor ${JSON.stringify(name.slice(0, 80))}`;
    const dims = await c.u32(`${what} dimension count`);
    if (dims < 1 || dims > MAX_DIMS) throw new Error(`${what} has ${dims} dimensions`);
    let elements = 1;
    for (let d = 0; d < dims; d++) {
      const extent = await c.u64(`${what} dimension ${d}`);
      elements *= extent;
      if (!Number.isSafeInteger(elements)) throw new Error(`${what} has too many elements`);
    }
    const type = await c.u32(`${what} type`);
    const offset = await c.u64(`${what} offset`);
    if (offset % alignment !== 0) throw new Error(`${what} offset ${offset} is not aligned`);
    const block = TENSOR_BLOCKS[type];
    if (block && elements % block[1] !== 0) {
      throw new Error(`${what}: ${elements} elements do not fill blocks of ${block[1]}`);
    }
    table.push({
      name: what,
      offset,
      ...(block ? { bytes: (elements / block[1]) * block[0] } : {}),
    });
  }
  const dataStart = Math.ceil(c.position / alignment) * alignment;
  for (const t of table) {
    const end = dataStart + t.offset + (t.bytes ?? 1);
    if (end > c.size) {
      throw new Error(`${t.name} data ends at byte ${end}, past the end of the file (${c.size})`);
    }
  }
}
