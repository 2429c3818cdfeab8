import type { Command } from "./command.ts";
import { parseFlags, println } from "./command.ts";
import { VERSION } from "../version.ts";

/** `loam version`: agent, Deno and target versions. */
export const versionCommand: Command = {
  name: "version",
  help: "Usage: loam version\n\nPrints the loam version, the Deno runtime and the build target.",
  run(args) {
    if (parseFlags("version", args, {}).help) {
      println(this.help);
      return Promise.resolve(0);
    }
    println(`loam ${VERSION} (deno ${Deno.version.deno}, ${Deno.build.target})`);
    return Promise.resolve(0);
  },
};
