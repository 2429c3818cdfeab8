import assert from "node:assert/strict";
import { probeModel } from "./probe_model.ts";
import { tinyOnnxModel } from "../../tests/fixtures/tiny_onnx.ts";

Deno.test("the provider probe's stored graph is the tiny test graph, byte for byte", () => {
  assert.deepEqual(probeModel(), tinyOnnxModel());
});
