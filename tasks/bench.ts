/**
 * `deno task bench`: loam's blob path against the standard tools, measured in the same run
 * (interleaved rounds) and printed as ratios:
 * - `loam fetch` of a 1 GiB random file from a local HTTP server vs `curl -s URL | sha256sum`
 *   (and, for reference, vs `curl -s -o FILE URL`, which writes but does not hash);
 * - peak RSS of that fetch vs the same command when the blob is already stored (idle);
 * - SHA-256 of the 1 GiB file: loam's streaming hash vs `sha256sum`.
 * @module
 */
import { hashFile } from "../src/blobs/digest.ts";
import { loamTaskPermissions, spawnLoam } from "../tests/e2e/harness.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
import { startBlobServer, writeRandomFile } from "../tests/fixtures/blob_server.ts";

const SIZE = 1024 * 1024 * 1024;
const ROUNDS = 3;
const MB = 1e6;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const result = await work();
  return [result, (performance.now() - started) / 1000];
}

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
      ...loamTaskPermissions(),
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

async function shell(script: string): Promise<string> {
  const out = await new Deno.Command("bash", { args: ["-c", script], stdout: "piped" }).output();
  if (!out.success) throw new Error(`failed: ${script}`);
  return new TextDecoder().decode(out.stdout);
}

const dir = await Deno.makeTempDir({ prefix: "loam-bench-" });
try {
  const file = `${dir}/blob.bin`;
  console.error(`writing ${SIZE / 1024 / 1024} MiB of random data to ${file} ...`);
  const hex = await writeRandomFile(file, SIZE);
  await using server = startBlobServer({ "/blob": { body: { file, size: SIZE } } });
  const url = server.url("/blob");
  const dataDir = `${dir}/data`;
  const fetchArgs = ["fetch", url, "--sha256", hex, "--size", String(SIZE), "--data-dir", dataDir];

  const curlSeconds: number[] = [];
  const curlFileSeconds: number[] = [];
  const loamSeconds: number[] = [];
  const loamPeak: number[] = [];
  const idlePeak: number[] = [];
  const hashSeconds: number[] = [];
  const sha256sumSeconds: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    console.error(`round ${round}/${ROUNDS}`);
    const [curlOut, curlTime] = await timed(() => shell(`curl -s ${url} | sha256sum`));
    if (!curlOut.startsWith(hex)) throw new Error("curl | sha256sum gave a different hash");
    curlSeconds.push(curlTime);
    const [, curlFileTime] = await timed(() => shell(`curl -s -o ${dir}/curl.out ${url}`));
    curlFileSeconds.push(curlFileTime);
    await Deno.remove(`${dir}/curl.out`);

    const removeBlob = () => Deno.remove(`${dataDir}/blobs/sha256/${hex}`).catch(() => {});
    await removeBlob();
    const [, loamTime] = await timed(() => loam(fetchArgs));
    loamSeconds.push(loamTime);
    await removeBlob();
    loamPeak.push(await loamPeakRssMb(fetchArgs));
    idlePeak.push(await loamPeakRssMb(fetchArgs)); // blob present: same process, no transfer

    const [{ hash }, hashTime] = await timed(() => hashFile(file));
    if (hash.digest("hex") !== hex) throw new Error("hashFile gave a different hash");
    hashSeconds.push(hashTime);
    const [sumOut, sumTime] = await timed(() => shell(`sha256sum ${file}`));
    if (!sumOut.startsWith(hex)) throw new Error("sha256sum gave a different hash");
    sha256sumSeconds.push(sumTime);
  }

  const rate = (seconds: number[]) => SIZE / median(seconds) / MB;
  const rows: [string, string, string, string, string][] = [
    [
      "fetch 1 GiB (MB/s)",
      rate(loamSeconds).toFixed(0),
      rate(curlSeconds).toFixed(0),
      (rate(loamSeconds) / rate(curlSeconds)).toFixed(2),
      ">= 0.9",
    ],
    [
      "fetch 1 GiB vs plain download (MB/s)",
      rate(loamSeconds).toFixed(0),
      rate(curlFileSeconds).toFixed(0),
      (rate(loamSeconds) / rate(curlFileSeconds)).toFixed(2),
      "(for reference: curl -o, no hash)",
    ],
    [
      "sha256 1 GiB (MB/s)",
      rate(hashSeconds).toFixed(0),
      rate(sha256sumSeconds).toFixed(0),
      (rate(hashSeconds) / rate(sha256sumSeconds)).toFixed(2),
      ">= 0.9",
    ],
    [
      "fetch peak RSS (MiB)",
      median(loamPeak).toFixed(0),
      median(idlePeak).toFixed(0),
      `+${(median(loamPeak) - median(idlePeak)).toFixed(0)} MiB`,
      "<= +32 MiB",
    ],
  ];
  console.log(`\nloam bench: medians of ${ROUNDS} interleaved rounds, ${Deno.build.target}`);
  console.log("| measure | loam | baseline | loam vs baseline | goal |");
  console.log("|---|---|---|---|---|");
  for (const row of rows) console.log(`| ${row.join(" | ")} |`);
  console.log(
    "\nbaselines: `curl -s URL | sha256sum` (fetch), `curl -s -o FILE URL` (plain download), " +
      "`sha256sum FILE` (hash), " +
      "`loam fetch` of an already stored blob (RSS)",
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}
