/**
 * Delay before retry pass `pass` (0-based): doubling from `initialMs` up to `maxMs`, with "equal
 * jitter" (half fixed, half random) so a fleet that lost its link together does not retry in step.
 */
export function backoffDelay(
  pass: number,
  initialMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const base = Math.min(maxMs, initialMs * 2 ** pass);
  return base / 2 + random() * (base / 2);
}
