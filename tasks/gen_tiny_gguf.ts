/**
 * Writes a tiny random-weight llama model as a GGUF v3 file, byte for byte the same for a given
 * seed: a SentencePiece-style vocabulary (909 tokens: 3 specials, 256 bytes, 650 English word
 * pieces), 64-wide embeddings, 2 layers, F32 tensors, under 1 MB. Its text is nonsense, but
 * llama.cpp (node-llama-cpp) loads it and greedy decoding is deterministic, which is what tests
 * and smoke runs need. Usage (rename needs read and write on the target's folder):
 * `deno run --allow-read=DIR --allow-write=DIR tasks/gen_tiny_gguf.ts DIR/tiny.gguf [seed]`.
 * @module
 */

/** Shape of the generated model. */
const TINY_LLAMA = {
  contextLength: 2048,
  embedding: 64,
  blocks: 2,
  feedForward: 256,
  heads: 4,
  headsKv: 2,
  rmsEpsilon: 1e-5,
  ropeFreqBase: 10000,
  alignment: 32,
} as const;

/** Ids of the special tokens in the generated vocabulary. */
const TINY_SPECIAL_TOKENS = { unk: 0, bos: 1, eos: 2 } as const;

const WORDS = (
  "the of and to in is was for on that with as by at from it he she they we you i be are " +
  "this his her their our your not or but have has had will would can could should may one " +
  "two three all some many more most other new old good great small large little long time " +
  "day night year world life hand part place case week house home water food light sun moon " +
  "star sky tree river sea stone road city town field garden door window room table book " +
  "letter story song word name voice music color red blue green white black gold silver " +
  "hello hi yes no please thank thanks friend people child man woman king queen bird fish " +
  "horse dog cat wind rain snow fire earth cloud morning evening spring summer autumn winter " +
  "go went come came see saw make made take took give gave find found know knew think thought " +
  "say said tell told ask asked walk run read write sing play open close begin end stop wait " +
  "live love like want need feel look hear keep hold bring turn move stand sit sleep dream " +
  "very also then there here when where what who why how now again always never often only " +
  "just still even well back away up down out over under into through after before between " +
  "edge node agent model token data signal field sensor power network mesh peer loam"
).split(" ");
const PUNCTUATION = [".", ",", "!", "?", ";", ":", "'", "-", "(", ")"];

/** Token kinds as llama.cpp numbers them (`llama_token_type`). */
const TokenType = { normal: 1, unknown: 2, control: 3, byte: 6 } as const;

/** GGUF metadata value types. */
const GgufType = {
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
} as const;

type MetaValue =
  | { type: "u32"; value: number }
  | { type: "f32"; value: number }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "strings"; value: string[] }
  | { type: "f32s"; value: number[] }
  | { type: "i32s"; value: number[] };

interface Tensor {
  name: string;
  /** GGML order: dims[0] is the contiguous (innermost) one. */
  dims: number[];
  data: Float32Array;
}

interface Vocab {
  tokens: string[];
  scores: number[];
  types: number[];
  /** True for whole words and punctuation (favoured in the output layer). */
  whole: boolean[];
}

/** mulberry32: a small, fast, seeded 32-bit PRNG returning floats in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * SentencePiece-style vocabulary: `<unk> <s> </s>`, `<0x00>`..`<0xFF>` byte fallbacks, the
 * space marker and single characters, then every prefix of every `▁word` so the greedy
 * pair-merging tokenizer can build whole words. Longer pieces score higher, so they win merges.
 */
function buildVocab(): Vocab {
  const tokens = ["<unk>", "<s>", "</s>"];
  const types: number[] = [TokenType.unknown, TokenType.control, TokenType.control];
  const scores = [0, 0, 0];
  const whole = [false, false, false];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(TokenType.byte);
    scores.push(0);
    whole.push(false);
  }
  const pieces = new Set<string>(["▁"]);
  for (let c = 97; c <= 122; c++) pieces.add(String.fromCharCode(c));
  for (const p of PUNCTUATION) pieces.add(p);
  for (const word of WORDS) {
    const piece = `▁${word}`;
    for (let end = 2; end <= piece.length; end++) pieces.add(piece.slice(0, end));
  }
  const words = new Set([...WORDS.map((w) => `▁${w}`), ...PUNCTUATION]);
  let order = 0;
  for (const piece of pieces) {
    tokens.push(piece);
    types.push(TokenType.normal);
    scores.push(piece.length * 10 - order++ / 1000);
    whole.push(words.has(piece));
  }
  return { tokens, scores, types, whole };
}

/** Uniform values in [-bound, bound) drawn from `rand`. */
function uniform(rand: () => number, count: number, bound: number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = (rand() * 2 - 1) * bound;
  return out;
}

/** Tensors of a llama model with random weights (std ≈ 1/sqrt(fan_in), norms at 1). */
function buildTensors(rand: () => number, vocabSize: number, vocab: Vocab): Tensor[] {
  const { embedding: n, blocks, feedForward: ff, heads, headsKv } = TINY_LLAMA;
  const kvWidth = (n / heads) * headsKv;
  const sqrt3 = Math.sqrt(3);
  const linear = (inDim: number, outDim: number): Float32Array =>
    uniform(rand, inDim * outDim, sqrt3 / Math.sqrt(inDim));
  const ones = (count: number): Float32Array => new Float32Array(count).fill(1);

  const tensors: Tensor[] = [
    { name: "token_embd.weight", dims: [n, vocabSize], data: uniform(rand, n * vocabSize, sqrt3) },
  ];
  for (let b = 0; b < blocks; b++) {
    const p = `blk.${b}`;
    tensors.push(
      { name: `${p}.attn_norm.weight`, dims: [n], data: ones(n) },
      { name: `${p}.attn_q.weight`, dims: [n, n], data: linear(n, n) },
      { name: `${p}.attn_k.weight`, dims: [n, kvWidth], data: linear(n, kvWidth) },
      { name: `${p}.attn_v.weight`, dims: [n, kvWidth], data: linear(n, kvWidth) },
      { name: `${p}.attn_output.weight`, dims: [n, n], data: linear(n, n) },
      { name: `${p}.ffn_norm.weight`, dims: [n], data: ones(n) },
      { name: `${p}.ffn_gate.weight`, dims: [n, ff], data: linear(n, ff) },
      { name: `${p}.ffn_up.weight`, dims: [n, ff], data: linear(n, ff) },
      { name: `${p}.ffn_down.weight`, dims: [ff, n], data: linear(ff, n) },
    );
  }
  // Logits: whole words at full scale, partial pieces and byte fallbacks damped, specials
  // silent (logit 0), so greedy text is mostly whole words and never ends early on </s>.
  const output = linear(n, vocabSize).map((v) => v * 3);
  for (let id = 0; id < vocabSize; id++) {
    const type = vocab.types[id];
    const scale = vocab.whole[id]
      ? 1
      : type === TokenType.normal
      ? 0.3
      : type === TokenType.byte
      ? 0.1
      : 0;
    for (let i = 0; i < n; i++) output[id * n + i] *= scale;
  }
  tensors.push(
    { name: "output_norm.weight", dims: [n], data: ones(n) },
    { name: "output.weight", dims: [n, vocabSize], data: output },
  );
  return tensors;
}

/** Little-endian byte writer that grows as needed. */
class ByteWriter {
  #buf = new Uint8Array(1 << 16);
  #view = new DataView(this.#buf.buffer);
  #len = 0;
  static #encoder = new TextEncoder();

  get length(): number {
    return this.#len;
  }

  #reserve(extra: number): number {
    const need = this.#len + extra;
    if (need > this.#buf.length) {
      let size = this.#buf.length;
      while (size < need) size *= 2;
      const next = new Uint8Array(size);
      next.set(this.#buf.subarray(0, this.#len));
      this.#buf = next;
      this.#view = new DataView(next.buffer);
    }
    const at = this.#len;
    this.#len = need;
    return at;
  }

  u32(v: number): void {
    this.#view.setUint32(this.#reserve(4), v, true);
  }
  i32(v: number): void {
    this.#view.setInt32(this.#reserve(4), v, true);
  }
  u64(v: number): void {
    this.#view.setBigUint64(this.#reserve(8), BigInt(v), true);
  }
  f32(v: number): void {
    this.#view.setFloat32(this.#reserve(4), v, true);
  }
  u8(v: number): void {
    this.#view.setUint8(this.#reserve(1), v);
  }
  /** GGUF string: u64 byte length, then UTF-8 bytes (no terminator). */
  str(s: string): void {
    const bytes = ByteWriter.#encoder.encode(s);
    this.u64(bytes.length);
    this.#buf.set(bytes, this.#reserve(bytes.length));
  }
  f32s(values: Float32Array): void {
    const at = this.#reserve(values.length * 4);
    for (let i = 0; i < values.length; i++) this.#view.setFloat32(at + i * 4, values[i], true);
  }
  padTo(alignment: number): void {
    const pad = (alignment - (this.#len % alignment)) % alignment;
    this.#reserve(pad); // fresh bytes are zero
  }
  bytes(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

/** Writes one metadata key/value pair. */
function writeMeta(w: ByteWriter, key: string, meta: MetaValue): void {
  w.str(key);
  switch (meta.type) {
    case "u32":
      w.u32(GgufType.uint32);
      w.u32(meta.value);
      break;
    case "f32":
      w.u32(GgufType.float32);
      w.f32(meta.value);
      break;
    case "bool":
      w.u32(GgufType.bool);
      w.u8(meta.value ? 1 : 0);
      break;
    case "string":
      w.u32(GgufType.string);
      w.str(meta.value);
      break;
    case "strings":
      w.u32(GgufType.array);
      w.u32(GgufType.string);
      w.u64(meta.value.length);
      for (const s of meta.value) w.str(s);
      break;
    case "f32s":
      w.u32(GgufType.array);
      w.u32(GgufType.float32);
      w.u64(meta.value.length);
      for (const v of meta.value) w.f32(v);
      break;
    case "i32s":
      w.u32(GgufType.array);
      w.u32(GgufType.int32);
      w.u64(meta.value.length);
      for (const v of meta.value) w.i32(v);
      break;
  }
}

/** The whole GGUF v3 file for `seed`, in memory. */
export function buildTinyGguf(seed = 1): Uint8Array {
  const rand = mulberry32(seed);
  const vocab = buildVocab();
  const tensors = buildTensors(rand, vocab.tokens.length, vocab);
  const t = TINY_LLAMA;
  const metadata: [string, MetaValue][] = [
    ["general.architecture", { type: "string", value: "llama" }],
    ["general.name", { type: "string", value: `loam-tiny-random-seed${seed}` }],
    ["general.file_type", { type: "u32", value: 0 }], // all F32
    ["general.alignment", { type: "u32", value: t.alignment }],
    ["llama.vocab_size", { type: "u32", value: vocab.tokens.length }],
    ["llama.context_length", { type: "u32", value: t.contextLength }],
    ["llama.embedding_length", { type: "u32", value: t.embedding }],
    ["llama.block_count", { type: "u32", value: t.blocks }],
    ["llama.feed_forward_length", { type: "u32", value: t.feedForward }],
    ["llama.attention.head_count", { type: "u32", value: t.heads }],
    ["llama.attention.head_count_kv", { type: "u32", value: t.headsKv }],
    ["llama.rope.dimension_count", { type: "u32", value: t.embedding / t.heads }],
    ["llama.rope.freq_base", { type: "f32", value: t.ropeFreqBase }],
    ["llama.attention.layer_norm_rms_epsilon", { type: "f32", value: t.rmsEpsilon }],
    ["tokenizer.ggml.model", { type: "string", value: "llama" }],
    ["tokenizer.ggml.tokens", { type: "strings", value: vocab.tokens }],
    ["tokenizer.ggml.scores", { type: "f32s", value: vocab.scores }],
    ["tokenizer.ggml.token_type", { type: "i32s", value: vocab.types }],
    ["tokenizer.ggml.unknown_token_id", { type: "u32", value: TINY_SPECIAL_TOKENS.unk }],
    ["tokenizer.ggml.bos_token_id", { type: "u32", value: TINY_SPECIAL_TOKENS.bos }],
    ["tokenizer.ggml.eos_token_id", { type: "u32", value: TINY_SPECIAL_TOKENS.eos }],
    ["tokenizer.ggml.add_bos_token", { type: "bool", value: true }],
    ["tokenizer.ggml.add_eos_token", { type: "bool", value: false }],
  ];

  const w = new ByteWriter();
  w.u32(0x46554747); // "GGUF"
  w.u32(3); // version
  w.u64(tensors.length);
  w.u64(metadata.length);
  for (const [key, value] of metadata) writeMeta(w, key, value);

  let offset = 0;
  const offsets: number[] = [];
  for (const tensor of tensors) {
    w.str(tensor.name);
    w.u32(tensor.dims.length);
    for (const d of tensor.dims) w.u64(d);
    w.u32(0); // GGML_TYPE_F32
    w.u64(offset);
    offsets.push(offset);
    offset += Math.ceil((tensor.data.length * 4) / t.alignment) * t.alignment;
  }
  w.padTo(t.alignment);
  const dataStart = w.length;
  tensors.forEach((tensor, i) => {
    if (w.length !== dataStart + offsets[i]) throw new Error(`misplaced tensor ${tensor.name}`);
    w.f32s(tensor.data);
    w.padTo(t.alignment);
  });
  return w.bytes();
}

/** Writes the tiny model for `options.seed` (default 1) to `path` atomically (temp, fsync, rename). */
export async function writeTinyGguf(path: string, options?: { seed?: number }): Promise<void> {
  const bytes = buildTinyGguf(options?.seed ?? 1);
  const temp = `${path}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o644 });
    try {
      let written = 0;
      while (written < bytes.length) written += await file.write(bytes.subarray(written));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temp, path);
  } catch (err) {
    await Deno.remove(temp).catch(() => {});
    throw err;
  }
  const slash = path.lastIndexOf("/");
  const dir = slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
  try {
    const handle = await Deno.open(dir, { read: true });
    try {
      await handle.sync();
    } finally {
      handle.close();
    }
  } catch {
    // Directory fsync is best effort (not supported everywhere).
  }
}

if (import.meta.main) {
  const out = Deno.args[0];
  if (!out) {
    console.error(
      "usage: deno run --allow-read=DIR --allow-write=DIR tasks/gen_tiny_gguf.ts DIR/x.gguf [seed]",
    );
    Deno.exit(2);
  }
  const seed = Deno.args[1] === undefined ? 1 : Number(Deno.args[1]);
  if (!Number.isInteger(seed)) {
    console.error(`seed must be an integer, got ${Deno.args[1]}`);
    Deno.exit(2);
  }
  await writeTinyGguf(out, { seed });
  console.log(`wrote ${out} (seed ${seed})`);
}
