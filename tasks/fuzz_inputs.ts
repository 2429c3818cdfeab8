/**
 * The hostile inputs `deno task fuzz` draws, as fast-check arbitraries so that one seed gives the
 * same inputs on every machine: random bytes, byte-level mutations of a valid input (bit flips,
 * truncation, insertion, duplication), structural mutations of valid JSON (a value replaced by a
 * hostile one, a key dropped or added), and hostile values (deep nesting, huge strings,
 * prototype keys, numbers JSON cannot hold).
 * @module
 */
import fc from "fast-check";

/** Draws `count` values of `arb` for `seed`, the same ones every time. */
export function draw<T>(arb: fc.Arbitrary<T>, count: number, seed: number): T[] {
  return count > 0 ? fc.sample(arb, { seed, numRuns: count }) : [];
}

/** Values a parser may choke on: deep nesting, big sizes, odd keys and numbers. */
export function hostileValue(): fc.Arbitrary<unknown> {
  const deep = fc.integer({ min: 50, max: 5000 }).map((depth) => {
    let value: unknown = 0;
    for (let i = 0; i < depth; i++) value = i % 2 ? [value] : { a: value };
    return value;
  });
  return fc.oneof(
    fc.jsonValue({ maxDepth: 4 }),
    deep,
    fc.integer({ min: 1, max: 2_000_000 }).map((n) => "x".repeat(n)),
    fc.constantFrom(
      -1,
      0,
      -0,
      2 ** 53,
      1e308,
      Number.MAX_SAFE_INTEGER,
      "",
      " ",
      "\u0000",
      "../../etc/passwd",
      "/etc/shadow",
      "%00",
      "\ud800",
      "${HOME}",
      null,
      true,
      [],
      {},
      { ["__proto__"]: { polluted: true } },
      { constructor: { prototype: { polluted: true } } },
    ),
    fc.array(fc.jsonValue({ maxDepth: 1 }), { minLength: 1000, maxLength: 20_000 }),
  );
}

/** Copies of `valid` with a few byte-level changes each. */
export function mutatedBytes(valid: Uint8Array): fc.Arbitrary<Uint8Array<ArrayBuffer>> {
  const edit = fc.tuple(
    fc.constantFrom("flip", "set", "truncate", "insert", "delete", "duplicate"),
    fc.nat(),
    fc.integer({ min: 0, max: 255 }),
    fc.integer({ min: 1, max: 64 }),
  );
  return fc.array(edit, { minLength: 1, maxLength: 8 }).map((edits) => {
    let bytes: Uint8Array<ArrayBuffer> = concat(valid);
    for (const [op, where, byte, length] of edits) {
      const at = bytes.length === 0 ? 0 : where % bytes.length;
      if (op === "flip" && bytes.length) bytes[at] = bytes[at]! ^ (1 << (byte % 8));
      else if (op === "set" && bytes.length) bytes[at] = byte;
      else if (op === "truncate") bytes = bytes.slice(0, at);
      else if (op === "insert") {
        bytes = concat(bytes.slice(0, at), new Uint8Array(length).fill(byte), bytes.slice(at));
      } else if (op === "delete") bytes = concat(bytes.slice(0, at), bytes.slice(at + length));
      else if (op === "duplicate") {
        bytes = concat(bytes.slice(0, at + length), bytes.slice(at));
      }
    }
    return bytes;
  });
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** The paths (keys from the root) of every value inside `value`. */
function pathsOf(value: unknown, prefix: string[] = [], out: string[][] = []): string[][] {
  out.push(prefix);
  if (value !== null && typeof value === "object" && out.length < 500) {
    for (const [key, child] of Object.entries(value)) pathsOf(child, [...prefix, key], out);
  }
  return out;
}

/** Copies of `valid` (JSON) with one to three values replaced, removed, or keys added. */
export function mutatedJson(valid: unknown): fc.Arbitrary<unknown> {
  const paths = pathsOf(valid);
  const edit = fc.tuple(
    fc.constantFrom("replace", "remove", "add"),
    fc.integer({ min: 0, max: paths.length - 1 }),
    hostileValue(),
    fc.string({ maxLength: 12 }),
  );
  return fc.array(edit, { minLength: 1, maxLength: 3 }).map((edits) => {
    const copy = structuredClone(valid) as Record<string, unknown>;
    let root: unknown = copy;
    for (const [op, index, value, key] of edits) {
      const path = paths[index]!;
      if (path.length === 0) {
        root = op === "replace" ? value : root;
        continue;
      }
      let parent = root !== null && typeof root === "object"
        ? root as Record<string, unknown>
        : undefined;
      for (const part of path.slice(0, -1)) {
        const next = parent?.[part];
        parent = next !== null && typeof next === "object"
          ? next as Record<string, unknown>
          : undefined;
      }
      if (!parent) continue;
      const last = path.at(-1)!;
      try {
        if (op === "replace") parent[last] = value;
        else if (op === "remove") delete parent[last];
        else Object.defineProperty(parent, key, { value, enumerable: true, configurable: true });
      } catch {
        // An edit the engine refuses (an array's `length` set to an odd value) is skipped.
      }
    }
    return root;
  });
}

/** Any bytes, mostly short, sometimes large. */
export function randomBytes(): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.uint8Array({ maxLength: 256 }),
    fc.uint8Array({ minLength: 1024, maxLength: 70_000 }),
  );
}

/** JSON text of `value`, or of a stand-in when it cannot be written (a cycle-free but odd value). */
export function jsonText(value: unknown): string {
  try {
    return JSON.stringify(value) ?? "null";
  } catch {
    return "null";
  }
}

/** A short description of an input, for the report. */
export function describe(value: unknown): string {
  if (value instanceof Uint8Array) {
    return `${value.length} bytes: ${JSON.stringify(new TextDecoder().decode(value.slice(0, 80)))}`;
  }
  const text = jsonText(value);
  return text.length > 200 ? `${text.slice(0, 200)}… (${text.length} chars)` : text;
}
