import assert from "node:assert/strict";
import { parseNvidiaSmiCsv, probeLiveHardware, probeStaticHardware } from "./hardware.ts";

Deno.test("parseNvidiaSmiCsv reads name, memory and driver of each GPU", () => {
  const text = "NVIDIA H100 80GB HBM3, 81559, 550.54.15\nNVIDIA A2, 15356, 550.54.15\n\n";
  assert.deepEqual(parseNvidiaSmiCsv(text), [
    { name: "NVIDIA H100 80GB HBM3", vram_mb: 81559, kind: "nvidia", driver_version: "550.54.15" },
    { name: "NVIDIA A2", vram_mb: 15356, kind: "nvidia", driver_version: "550.54.15" },
  ]);
  assert.deepEqual(parseNvidiaSmiCsv("Orin (nvgpu), [N/A], 540.3.0"), [
    { name: "Orin (nvgpu)", vram_mb: 0, kind: "nvidia", driver_version: "540.3.0" },
  ]);
  assert.deepEqual(parseNvidiaSmiCsv(""), []);
});

Deno.test("the probe reports this machine's CPU, memory, disk and (absent) GPUs", async () => {
  const statics = await probeStaticHardware();
  assert.equal(statics.arch, Deno.build.arch);
  assert.equal(statics.cpu.count, navigator.hardwareConcurrency);
  const hasSmi = await Deno.stat("/usr/bin/nvidia-smi").then(() => true, () => false);
  const isJetson = statics.board_model?.includes("Jetson") ?? false;
  if (!hasSmi && !isJetson) assert.deepEqual(statics.gpus, []);
  const live = probeLiveHardware(statics, Deno.cwd());
  const mem = Deno.systemMemoryInfo();
  assert.equal(live.ram.total_mb, Math.round(mem.total / 1024 / 1024));
  assert.ok(live.disk.free_mb > 0 && live.disk.free_mb <= live.disk.total_mb);
});
