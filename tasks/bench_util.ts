/** Shared pieces of `deno task bench`. @module */

/** One table row: measure, loam's figure, the baseline's, the goal, and how to compare. */
export type BenchRow = [
  measure: string,
  loam: number,
  baseline: number,
  goal: string,
  compare?: "ratio" | "diff",
];

/** Median of a list of numbers. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Percentile `p` (0-100) of a list of numbers. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Runs `work` and returns its result with the seconds it took. */
export async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const result = await work();
  return [result, (performance.now() - started) / 1000];
}

/** Runs a bash script and returns its standard output; throws on failure. */
export async function shell(script: string): Promise<string> {
  const out = await new Deno.Command("bash", { args: ["-c", script], stdout: "piped" }).output();
  if (!out.success) throw new Error(`failed: ${script}`);
  return new TextDecoder().decode(out.stdout);
}

/** Prints rows as a Markdown table with the loam/baseline ratio (or difference). */
export function printTable(title: string, rows: BenchRow[]): void {
  console.log(`\n${title}`);
  console.log("| measure | loam | baseline | loam vs baseline | goal |");
  console.log("|---|---|---|---|---|");
  for (const [measure, loam, baseline, goal, compare] of rows) {
    const diff = loam - baseline;
    const versus = compare === "diff"
      ? `${diff >= 0 ? "+" : ""}${diff.toFixed(Math.abs(diff) >= 10 ? 0 : 2)}`
      : (loam / baseline).toFixed(2);
    const fmt = (n: number) => n.toFixed(n >= 100 ? 0 : n >= 10 ? 1 : 2);
    console.log(`| ${measure} | ${fmt(loam)} | ${fmt(baseline)} | ${versus} | ${goal} |`);
  }
}
