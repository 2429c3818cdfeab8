import type { Command } from "./command.ts";
import { parseFlags, println } from "./command.ts";
import { VERSION } from "../version.ts";
import { packaging, verifyPayload } from "../system/packaged.ts";
import { UserError } from "../system/errors.ts";

const HELP = `Usage: loam version [--json] [--verify]

Prints the loam version, how it runs (kind: sfx for a self-extracting file, source for
deno run), the build target, the Deno runtime, and for a packaged file the payload hash.

  --json                 the same as one JSON object
  --verify               re-hash the extracted payload against its manifest; exit 1 naming
                         every file that differs (a packaged file only)`;

/** `loam version`: what this loam is, where it came from, and whether its files are intact. */
export const versionCommand: Command = {
  name: "version",
  help: HELP,
  async run(args) {
    const parsed = parseFlags("version", args, {
      json: { type: "boolean" },
      verify: { type: "boolean" },
    });
    if (parsed.help) {
      println(this.help);
      return 0;
    }
    const packaged = packaging();
    const report = {
      version: VERSION,
      kind: packaged.kind,
      target: packaged.kind === "sfx" ? packaged.target : Deno.build.target,
      deno_version: Deno.version.deno,
      payload_sha256: packaged.kind === "sfx" ? packaged.payload_sha256 : null,
      runtime_dir: packaged.kind === "sfx" ? packaged.dir : null,
      file: packaged.kind === "sfx" ? packaged.file ?? null : null,
    };
    let verified: string | undefined;
    if (parsed.values.verify) {
      if (packaged.kind !== "sfx") {
        throw new UserError("version --verify: this loam runs from source; there is no payload");
      }
      const problems = await verifyPayload(packaged.dir);
      if (problems.length > 0) {
        for (const p of problems) console.error(`loam: ${packaged.dir}/${p.path}: ${p.problem}`);
        throw new UserError(
          `version --verify: ${problems.length} file(s) of the payload differ from the build; ` +
            `remove ${packaged.dir} and run the file again to extract it anew`,
          1,
        );
      }
      verified = "payload verified: every file matches the build";
    }
    if (parsed.values.json) {
      println(JSON.stringify({ ...report, ...(verified ? { verified: true } : {}) }, null, 2));
    } else {
      const hash = report.payload_sha256 ? `, payload sha256:${report.payload_sha256}` : "";
      println(
        `loam ${VERSION} (${report.kind}, ${report.target}, deno ${report.deno_version}${hash})`,
      );
      if (verified) println(verified);
    }
    return 0;
  },
};
