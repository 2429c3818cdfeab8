import onnxProto from "onnx-proto";

const { onnx } = onnxProto;

/** Builds a tiny ONNX model (provider probe, tests; opset 13): x float32 [N, 4] → y = x * 2 + 1 [N, 4], sum = ReduceSum(y, axis 1) [N]. */
export function tinyOnnxModel(): Uint8Array {
  const { FLOAT, INT64 } = onnx.TensorProto.DataType;
  const tensorType = (elemType: number, dims: (number | string)[]) => ({
    tensorType: {
      elemType,
      shape: {
        dim: dims.map((d) => typeof d === "number" ? { dimValue: d } : { dimParam: d }),
      },
    },
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 13 }],
    producerName: "loam-tests",
    graph: {
      name: "tiny",
      node: [
        { opType: "Mul", input: ["x", "two"], output: ["x2"], name: "mul" },
        { opType: "Add", input: ["x2", "one"], output: ["y"], name: "add" },
        {
          opType: "ReduceSum",
          input: ["y", "axes"],
          output: ["sum"],
          name: "reduce_sum",
          attribute: [{ name: "keepdims", type: onnx.AttributeProto.AttributeType.INT, i: 0 }],
        },
      ],
      initializer: [
        { name: "two", dataType: FLOAT, dims: [], floatData: [2] },
        { name: "one", dataType: FLOAT, dims: [], floatData: [1] },
        { name: "axes", dataType: INT64, dims: [1], int64Data: [1] },
      ],
      input: [{ name: "x", type: tensorType(FLOAT, ["N", 4]) }],
      output: [
        { name: "y", type: tensorType(FLOAT, ["N", 4]) },
        { name: "sum", type: tensorType(FLOAT, ["N"]) },
      ],
    },
  });
  return new Uint8Array(onnx.ModelProto.encode(model).finish());
}
