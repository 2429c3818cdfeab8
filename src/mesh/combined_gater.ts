/**
 * One libp2p connection gater from several (identity-clash watching, the allowlist, the
 * per-address limit): libp2p takes a single gater, and each concern keeps its own file. A hook
 * denies when any of the gaters that have it denies; every one runs, since some only watch.
 * @module
 */
import type { ConnectionGater } from "@libp2p/interface";

type Hook = keyof ConnectionGater;

/** The gater whose every hook asks each of `gaters` that has it. */
export function combineGaters(...gaters: Partial<ConnectionGater>[]): ConnectionGater {
  const combined: Record<string, (...args: unknown[]) => Promise<boolean>> = {};
  const hooks = new Set(gaters.flatMap((g) => Object.keys(g) as Hook[]));
  for (const hook of hooks) {
    const fns = gaters.map((g) => g[hook] as ((...args: unknown[]) => unknown) | undefined)
      .filter((fn) => fn !== undefined);
    combined[hook] = async (...args) => {
      let deny = false;
      for (const fn of fns) deny = (await fn(...args)) === true || deny;
      return deny;
    };
  }
  return combined as ConnectionGater;
}
