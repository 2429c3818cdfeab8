/**
 * Rows as aligned columns under a header row (what `kubectl get` prints); an empty list says
 * `none` under the header.
 */
export function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => i === cells.length - 1 ? c : c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(headers), ...(rows.length ? rows.map(line) : ["(none)"])].join("\n");
}
