/**
 * Nesting deeper than this, in any JSON the agent did not write itself, is refused before it is
 * parsed: a 6 KB directive whose `config` nests 3,000 arrays deep overflowed the stack of the
 * first recursive walk over it (clone, stringify), and 1,000 levels turned 2.3 KB of input into
 * a 2 MB indented record. Real configs stay far below this.
 */
export const MAX_JSON_DEPTH = 64;

/** Why a JSON text was refused before parsing: too large or nested too deep. */
export class JsonLimitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JsonLimitError";
  }
}

/** The limits {@link parseBoundedJson} checks. */
export interface JsonLimits {
  /** Longest text accepted, in UTF-8 bytes. */
  maxBytes: number;
  /** Deepest nesting of arrays and objects accepted. @default MAX_JSON_DEPTH */
  maxDepth?: number;
}

/**
 * The deepest nesting of `[` and `{` in a JSON text, found in one pass without recursion
 * (brackets inside strings do not count), stopping as soon as `limit` is passed: the check
 * costs no more than reading the text, whatever the text is. The scan jumps natively from one
 * bracket or quote to the next (a character class, no backtracking), so a tensor of numbers
 * costs a few microseconds, not one JavaScript step per character.
 */
export function jsonDepth(text: string, limit = Infinity): number {
  const structural = /[[\]{}"]/g;
  let depth = 0;
  let deepest = 0;
  for (let m = structural.exec(text); m !== null; m = structural.exec(text)) {
    const c = m[0];
    if (c === '"') {
      const end = stringEnd(text, structural.lastIndex);
      if (end < 0) break; // unterminated: JSON.parse refuses it
      structural.lastIndex = end + 1;
    } else if (c === "[" || c === "{") {
      if (++depth > deepest) {
        deepest = depth;
        if (deepest > limit) return deepest;
      }
    } else {
      depth--;
    }
  }
  return deepest;
}

/** Index of the quote that closes the string whose text starts at `from`; -1 when none. */
function stringEnd(text: string, from: number): number {
  for (let i = text.indexOf('"', from); i >= 0; i = text.indexOf('"', i + 1)) {
    let backslashes = 0;
    while (text.charCodeAt(i - 1 - backslashes) === 0x5c) backslashes++;
    if (backslashes % 2 === 0) return i;
  }
  return -1;
}

/**
 * Parses JSON that came from outside (an API body, a wire payload, a file read at start) after
 * checking its size and depth, so no later recursive work (zod, structuredClone, stringify) can
 * be driven into a stack overflow or a blow-up by a single input.
 * @throws {JsonLimitError} naming the limit that was passed
 * @throws {SyntaxError} when the text is not JSON
 */
export function parseBoundedJson(text: string, limits: JsonLimits): unknown {
  const maxDepth = limits.maxDepth ?? MAX_JSON_DEPTH;
  // UTF-8 takes at least one byte per UTF-16 unit and at most three
  if (
    text.length > limits.maxBytes || (text.length * 3 > limits.maxBytes &&
      new TextEncoder().encode(text).length > limits.maxBytes)
  ) {
    throw new JsonLimitError(`JSON text is larger than ${limits.maxBytes} bytes`);
  }
  if (jsonDepth(text, maxDepth) > maxDepth) {
    throw new JsonLimitError(`JSON nests deeper than ${maxDepth} levels`);
  }
  return JSON.parse(text);
}

/**
 * Reads and parses a JSON file within a size and a depth limit: a file on disk (a deployment
 * record, the replay list, a partial's metadata) may have been damaged or planted, and must not
 * be able to stop the agent from starting.
 * @throws {JsonLimitError} when the file is larger than `maxBytes` or nests too deep
 */
export async function readBoundedJsonFile(path: string, maxBytes: number): Promise<unknown> {
  const size = (await Deno.stat(path)).size;
  if (size > maxBytes) {
    throw new JsonLimitError(`${size} bytes, more than the ${maxBytes} allowed`);
  }
  return parseBoundedJson(await Deno.readTextFile(path), { maxBytes });
}
