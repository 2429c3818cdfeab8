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

/**
 * The tail of a peer id: enough to tell nodes apart on one screen (every Ed25519 peer id starts
 * with the same "12D3KooW", so the head tells nothing).
 */
export function shortPeerId(peerId: string): string {
  return peerId.slice(-8);
}
