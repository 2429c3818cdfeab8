/**
 * The shipped file against running from source, in the same run: the x86_64 sfx file's size
 * (against its unpacked payload), its first-run extraction (against gzip | tar of the same
 * payload), its warm start-to-ready and its idle RSS after 30 s (against `deno run main.ts`), and
 * the idle RSS of the run that extracted it (against later runs).
 * Uses `dist/loam-x86_64-linux` (built first when missing).
 * @module
 */
import { join } from "node:path";
import { type AgentProcess, startAgent } from "../tests/e2e/harness.ts";
import { type BenchRow, median, shell, timed } from "./bench_util.ts";
import { sleep } from "../src/system/sleep.ts";

const FILE = new URL("../dist/loam-x86_64-linux", import.meta.url).pathname;
const ROUNDS = 3;
const IDLE_MS = 30_000;

async function rssMiB(agent: AgentProcess): Promise<number> {
  const status = await shell(`cat /proc/${agent.pid}/status`);
  return Number(status.match(/VmRSS:\s+(\d+) kB/)![1]) / 1024;
}

/** The payload offset and size the header names. */
async function payloadInfo(): Promise<{ header_bytes: number; payload_bytes: number }> {
  return JSON.parse(await shell(`sh '${FILE}' --payload-info`));
}

/** The x86_64 file's rows. */
export async function benchBuild(dir: string): Promise<BenchRow[]> {
  await Deno.mkdir(dir, { recursive: true });
  if (!await Deno.stat(FILE).then(() => true, () => false)) {
    await shell("deno task build --target x86_64-unknown-linux-gnu --kind sfx >/dev/null");
  }
  const info = await payloadInfo();
  const extract: number[] = [];
  const untar: number[] = [];
  let unpacked = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const runtime = join(dir, `runtime-${round}`);
    const [, first] = await timed(() =>
      shell(`LOAM_RUNTIME_DIR='${runtime}' sh '${FILE}' version >/dev/null`)
    );
    extract.push(first);
    const plain = join(dir, `plain-${round}`);
    await Deno.mkdir(plain);
    const [, baseline] = await timed(() =>
      shell(`tail -c +${info.header_bytes + 1} '${FILE}' | gzip -dc | tar -x -C '${plain}'`)
    );
    untar.push(baseline);
    unpacked = Number((await shell(`du -sb '${plain}'`)).split(/\s/)[0]);
    await Deno.remove(plain, { recursive: true });
  }
  const runtime = join(dir, "runtime-0");
  const fromFile: number[] = [];
  const fromSource: number[] = [];
  let agents: AgentProcess[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const [shipped, a] = await timed(() =>
      startAgent(join(dir, `file-${round}`), [], {
        binary: FILE,
        env: { LOAM_RUNTIME_DIR: runtime },
      })
    );
    const [source, b] = await timed(() => startAgent(join(dir, `source-${round}`)));
    fromFile.push(a);
    fromSource.push(b);
    if (round < ROUNDS - 1) await Promise.all([shipped.stop(), source.stop()]);
    else agents = [shipped, source];
  }
  // the agent a first run starts: extraction included, and Deno's caches as that leaves them
  const first = await startAgent(join(dir, "file-first"), [], {
    binary: FILE,
    env: { LOAM_RUNTIME_DIR: join(dir, "runtime-first") },
  });
  agents.push(first);
  await sleep(IDLE_MS);
  const [fileRss, sourceRss, firstRss] = await Promise.all(agents.map(rssMiB));
  await Promise.all(agents.map((a) => a.stop()));
  const mib = (bytes: number) => bytes / 1024 / 1024;
  return [
    [
      "x86_64 sfx file size (MiB)",
      mib((await Deno.stat(FILE)).size),
      mib(unpacked),
      "unpacked payload",
      "ratio",
    ],
    [
      "first run: check + extract + test start (s)",
      median(extract),
      median(untar),
      "gzip -dc, tar -x alone",
      "ratio",
    ],
    ["start to ready, warm (s)", median(fromFile), median(fromSource), "from source", "ratio"],
    [
      `idle RSS after ${IDLE_MS / 1000} s (MiB)`,
      fileRss,
      sourceRss,
      "from source; goal 64",
      "ratio",
    ],
    [
      `idle RSS after ${IDLE_MS / 1000} s, first run (MiB)`,
      firstRss,
      fileRss,
      "later runs",
      "ratio",
    ],
  ];
}
