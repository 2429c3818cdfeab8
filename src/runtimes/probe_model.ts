/**
 * A 243-byte ONNX graph (x [N,4] → y = 2x + 1, sum) that the execution-provider probe opens on
 * each GPU provider. Stored as bytes so the agent does not carry a protobuf library for it;
 * tests/fixtures/tiny_onnx.ts builds the same bytes (a test checks they match).
 * @module
 */
const BASE64 =
  "CAgSCmxvYW0tdGVzdHM63AEKFgoBeAoDdHdvEgJ4MhoDbXVsIgNNdWwKFgoCeDIKA29uZRIBeRoDYWRkIgNB" +
  "ZGQKNgoBeQoEYXhlcxIDc3VtGgpyZWR1Y2Vfc3VtIglSZWR1Y2VTdW0qDwoIa2VlcGRpbXMYAKABAhIEdGlueSoNEAEi" +
  "BAAAAEBCA3R3byoNEAEiBAAAgD9CA29uZSoOCgEBEAc6AQFCBGF4ZXNaFAoBeBIPCg0IARIJCgMSAU4KAggEYhQKAXkS" +
  "DwoNCAESCQoDEgFOCgIIBGISCgNzdW0SCwoJCAESBQoDEgFOQgQKABAN";

/** The probe graph's bytes. */
export function probeModel(): Uint8Array {
  return Uint8Array.from(atob(BASE64), (c) => c.charCodeAt(0));
}
