import denoConfig from "../deno.json" with { type: "json" };
import { packaging } from "./system/packaged.ts";

/**
 * The agent's version: what `deno task build --version` gave a packaged file, else deno.json's,
 * so that two builds of one source tree can be told apart in adverts and `loam version`.
 */
export const VERSION: string = (() => {
  const packaged = packaging();
  return packaged.kind === "sfx" ? packaged.version : denoConfig.version;
})();
