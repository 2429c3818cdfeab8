import assert from "node:assert/strict";
import {
  parseDims,
  parseTensorType,
  tensorBytes,
  TensorError,
  tensorFromBytes,
  tensorFromJson,
  tensorToJson,
} from "./tensors.ts";

Deno.test("JSON tensors round-trip by type", () => {
  const f = tensorFromJson("x", { type: "float32", dims: [1, 2], data: [0.5, 2] });
  assert.ok(f.data instanceof Float32Array);
  assert.deepEqual(tensorToJson(f), { type: "float32", dims: [1, 2], data: [0.5, 2] });
  const i = tensorFromJson("sr", { type: "int64", dims: [1], data: [16000] });
  assert.ok(i.data instanceof BigInt64Array);
  assert.deepEqual(tensorToJson(i).data, [16000]);
  const big = tensorFromJson("n", { type: "int64", dims: [1], data: ["9007199254740993"] });
  assert.deepEqual(tensorToJson(big).data, ["9007199254740993"]);
  const b = tensorFromJson("m", { type: "bool", dims: [2], data: [true, false] });
  assert.deepEqual(tensorToJson(b).data, [true, false]);
});

Deno.test("bad JSON tensors name the input and the problem", () => {
  assert.throws(
    () => tensorFromJson("x", { type: "float32", dims: [2, 2], data: [1, 2, 3] }),
    (err: unknown) =>
      err instanceof TensorError &&
      /input x: dims \[2,2\] hold 4 elements, data has 3/.test(err.message),
  );
  assert.throws(
    () => tensorFromJson("x", { type: "int32", dims: [1], data: ["a"] }),
    /input x: type int32 needs numbers/,
  );
  assert.throws(
    () => tensorFromJson("x", { type: "int64", dims: [1], data: [1.5] }),
    /input x: 1.5 is not an integer/,
  );
});

Deno.test("binary tensors need exactly dims × element size bytes", () => {
  const source = Float32Array.from([1, 2, 3, 4]);
  const bytes = new Uint8Array(source.buffer);
  const t = tensorFromBytes("x", "float32", [1, 4], bytes);
  assert.deepEqual(Array.from(t.data as Float32Array), [1, 2, 3, 4]);
  assert.deepEqual(tensorBytes(t), bytes);
  assert.throws(() => tensorFromBytes("x", "float32", [1, 5], bytes), /need 20 bytes, got 16/);
  assert.deepEqual(parseDims("x-loam-dims", "1, 16000"), [1, 16000]);
  assert.throws(() => parseDims("x-loam-dims", "1,-2"), /x-loam-dims: expected comma-separated/);
  assert.throws(() => parseDims("x-loam-dims", null), /missing header x-loam-dims/);
  assert.throws(() => parseTensorType("x-loam-type", "float"), /expected one of float32/);
});
