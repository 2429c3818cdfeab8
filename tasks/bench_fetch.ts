/**
 * Fetch benchmarks: `loam fetch` of a 1 GiB random file from a local HTTP server against
 * `curl | sha256sum` and `curl -o`, peak RSS against the same command with nothing to do, and
 * loam's SHA-256 against `sha256sum`, in interleaved rounds.
 * @module
 */
import { hashFile } from "../src/blobs/digest.ts";
import { spawnLoam } from "../tests/e2e/harness.ts";
import { agentFlags } from "./permissions.ts";
import { startBlobServer, writeRandomFile } from "../tests/fixtures/blob_server.ts";
import { type BenchRow, median, shell, timed } from "./bench_util.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const SIZE = 1024 * 1024 * 1024;
const ROUNDS = 3;
const MB = 1e6;

/** Polls VmHWM (peak RSS) of the child every 50 ms from bash: Deno may not read /proc/<pid>. */
const PEAK_RSS_SCRIPT = `"$@" >/dev/null 2>&1 & p=$!; hwm=0
while kill -0 $p 2>/dev/null; do
  while read -r k v _; do [ "$k" = VmHWM: ] && [ "$v" -gt "$hwm" ] && hwm=$v; done < /proc/$p/status
  sleep 0.05
done
wait $p || exit 1; echo $hwm`;

/** Runs `loam <args>` and returns its peak RSS in MiB. */
async function loamPeakRssMb(args: string[]): Promise<number> {
  const out = await new Deno.Command("bash", {
    args: [
      "-c",
      PEAK_RSS_SCRIPT,
      "peak-rss",
      "deno",
      "run",
      ...agentFlags(),
      MAIN,
      ...args,
    ],
    stdout: "piped",
  }).output();
  if (!out.success) throw new Error(`loam ${args.join(" ")} failed`);
  return Number(new TextDecoder().decode(out.stdout).trim()) / 1024;
}

/** Runs `loam <args>` to completion; throws on failure. */
async function loam(args: string[]): Promise<void> {
  const out = await spawnLoam(args).output();
  if (!out.success) throw new Error(`loam failed: ${new TextDecoder().decode(out.stderr)}`);
}

/** Measures the fetch path in `dir`; returns the table rows. */
export async function benchFetch(dir: string): Promise<BenchRow[]> {
  await Deno.mkdir(dir, { recursive: true });
  const file = `${dir}/blob.bin`;
  console.error(`fetch: writing ${SIZE / 1024 / 1024} MiB of random data ...`);
  const hex = await writeRandomFile(file, SIZE);
  await using server = startBlobServer({ "/blob": { body: { file, size: SIZE } } });
  const url = server.url("/blob");
  const dataDir = `${dir}/data`;
  const fetchArgs = ["fetch", url, "--sha256", hex, "--size", String(SIZE), "--data-dir", dataDir];
  const removeBlob = () => Deno.remove(`${dataDir}/blobs/sha256/${hex}`).catch(() => {});

  const s = {
    curl: [] as number[],
    curlFile: [] as number[],
    loam: [] as number[],
    hash: [] as number[],
    sum: [] as number[],
  };
  const peak: number[] = [];
  const idle: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    console.error(`fetch: round ${round}/${ROUNDS}`);
    const [curlOut, curlTime] = await timed(() => shell(`curl -s ${url} | sha256sum`));
    if (!curlOut.startsWith(hex)) throw new Error("curl | sha256sum gave a different hash");
    s.curl.push(curlTime);
    const [, curlFileTime] = await timed(() => shell(`curl -s -o ${dir}/curl.out ${url}`));
    s.curlFile.push(curlFileTime);
    await Deno.remove(`${dir}/curl.out`);

    await removeBlob();
    s.loam.push((await timed(() => loam(fetchArgs)))[1]);
    await removeBlob();
    peak.push(await loamPeakRssMb(fetchArgs));
    idle.push(await loamPeakRssMb(fetchArgs)); // blob present: same process, no transfer

    const [{ hash }, hashTime] = await timed(() => hashFile(file));
    if (hash.digest("hex") !== hex) throw new Error("hashFile gave a different hash");
    s.hash.push(hashTime);
    const [sumOut, sumTime] = await timed(() => shell(`sha256sum ${file}`));
    if (!sumOut.startsWith(hex)) throw new Error("sha256sum gave a different hash");
    s.sum.push(sumTime);
  }
  await Deno.remove(file);
  const rate = (seconds: number[]) => SIZE / median(seconds) / MB;
  return [
    ["fetch 1 GiB (MB/s) vs curl | sha256sum", rate(s.loam), rate(s.curl), ">= 0.9"],
    ["fetch 1 GiB (MB/s) vs curl -o (no hash)", rate(s.loam), rate(s.curlFile), "reference"],
    ["sha256 1 GiB (MB/s) vs sha256sum", rate(s.hash), rate(s.sum), ">= 0.9"],
    ["fetch peak RSS (MiB) vs idle fetch", median(peak), median(idle), "<= +32 MiB", "diff"],
  ];
}
