import { cpus } from "node:os";
import { diskSpace } from "./disk.ts";

/** A GPU found by the probe. */
export interface GpuInfo {
  name: string;
  /** Dedicated memory; on a Jetson the unified RAM it shares with the CPU. */
  vram_mb: number;
  kind: "nvidia" | "jetson";
  driver_version?: string;
}

/** Facts that do not change while the agent runs (probed once at start). */
export interface StaticHardware {
  arch: string;
  os: string;
  os_release: string;
  /** `count` logical CPUs; `physical_cores` without SMT siblings (the default thread count). */
  cpu: { count: number; physical_cores: number; model: string };
  gpus: GpuInfo[];
  /** Board model from the device tree (Jetson and other ARM boards), if any. */
  board_model?: string;
}

/** The full probe as reported by /v1/status: static facts plus live memory and disk. */
export interface Hardware extends StaticHardware {
  ram: { total_mb: number; free_mb: number };
  disk: { path: string; total_mb: number; free_mb: number };
}

const MB = 1024 * 1024;
const NVIDIA_SMI_TIMEOUT_MS = 5000;
/** Where NVIDIA's driver installs nvidia-smi; the only program the probe may run. */
const NVIDIA_SMI = "/usr/bin/nvidia-smi";

/** Parses `nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader,nounits`. */
export function parseNvidiaSmiCsv(text: string): GpuInfo[] {
  const gpus: GpuInfo[] = [];
  for (const line of text.split("\n")) {
    const fields = line.split(",").map((f) => f.trim());
    if (fields.length < 2 || fields[0] === "") continue;
    const vram = Number(fields[1]);
    gpus.push({
      name: fields[0]!,
      vram_mb: Number.isFinite(vram) ? vram : 0,
      kind: "nvidia",
      ...(fields[2] ? { driver_version: fields[2] } : {}),
    });
  }
  return gpus;
}

async function nvidiaSmiGpus(): Promise<GpuInfo[]> {
  try {
    const out = await new Deno.Command(NVIDIA_SMI, {
      args: ["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"],
      stdout: "piped",
      stderr: "null",
      signal: AbortSignal.timeout(NVIDIA_SMI_TIMEOUT_MS),
    }).output();
    return out.success ? parseNvidiaSmiCsv(new TextDecoder().decode(out.stdout)) : [];
  } catch {
    return []; // not installed, not permitted, or hung: no NVIDIA GPU we can use
  }
}

async function readBoardModel(): Promise<string | undefined> {
  try {
    const text = await Deno.readTextFile("/proc/device-tree/model");
    const model = text.replace(/\0/g, "").trim();
    return model === "" ? undefined : model;
  } catch {
    return undefined;
  }
}

/** Physical cores: logical CPUs grouped by their SMT sibling list (sysfs); undefined off Linux. */
async function physicalCores(): Promise<number | undefined> {
  const root = "/sys/devices/system/cpu";
  const siblings = new Set<string>();
  try {
    for await (const entry of Deno.readDir(root)) {
      if (!/^cpu\d+$/.test(entry.name)) continue;
      const list = await Deno.readTextFile(`${root}/${entry.name}/topology/thread_siblings_list`)
        .catch(() => entry.name);
      siblings.add(list.trim());
    }
  } catch {
    return undefined;
  }
  return siblings.size > 0 ? siblings.size : undefined;
}

/** Probes CPU, OS, board and GPUs (nvidia-smi, or a Jetson named by the device tree). */
export async function probeStaticHardware(): Promise<StaticHardware> {
  const cpuList = cpus();
  const [smiGpus, boardModel, cores] = await Promise.all([
    nvidiaSmiGpus(),
    readBoardModel(),
    physicalCores(),
  ]);
  const gpus = [...smiGpus];
  if (gpus.length === 0 && boardModel?.includes("Jetson")) {
    const totalMb = Math.round(Deno.systemMemoryInfo().total / MB);
    gpus.push({ name: boardModel, vram_mb: totalMb, kind: "jetson" });
  }
  return {
    arch: Deno.build.arch,
    os: Deno.build.os,
    os_release: Deno.osRelease(),
    cpu: {
      count: cpuList.length || navigator.hardwareConcurrency,
      physical_cores: cores ?? (cpuList.length || navigator.hardwareConcurrency),
      model: cpuList[0]?.model ?? "unknown",
    },
    gpus,
    ...(boardModel ? { board_model: boardModel } : {}),
  };
}

/** Adds live RAM and disk figures (disk = the filesystem holding `dataDir`). */
export function probeLiveHardware(statics: StaticHardware, dataDir: string): Hardware {
  const mem = Deno.systemMemoryInfo();
  const disk = diskSpace(dataDir);
  return {
    ...statics,
    ram: { total_mb: Math.round(mem.total / MB), free_mb: Math.round(mem.available / MB) },
    disk: {
      path: dataDir,
      total_mb: Math.round(disk.total / MB),
      free_mb: Math.round(disk.free / MB),
    },
  };
}
