import type { Command } from "./command.ts";
import { parseFlags, println } from "./command.ts";
import { CONFIG_OPTIONS, CONFIG_OPTIONS_HELP, loadConfigFromFlags } from "./config_flags.ts";
import { createProgressReporter } from "./progress.ts";
import { BlobFetcher, fetchSettings } from "../blobs/fetcher.ts";
import { BlobStore } from "../blobs/store.ts";
import { dataPathsFor, openDataDir } from "../system/paths.ts";
import { createLogger } from "../system/logger.ts";
import { UserError } from "../system/errors.ts";

const HELP = `Usage: loam fetch <url> [<url>...] --sha256 <hex> [--size <bytes>] [options]

Downloads a blob into this node's store (<data>/blobs/sha256/<hex>), verifying SHA-256 while
streaming, and prints its path. URLs are tried in order; an interrupted download resumes with a
Range request next time. Nothing unverified is ever stored.

  --sha256 <hex>         expected SHA-256 (64 hex digits, "sha256:" prefix allowed)
  --size <bytes>         declared size: refuse other sizes, check free disk space first

Exit 0 on success, 1 on failure with the reason (a mismatch shows expected and actual hash).
Retries, timeouts, bandwidth limit, CA file: the [fetch] config section.
Log lines below warn are hidden unless --log-level is given.

${CONFIG_OPTIONS_HELP}`;

function parseSize(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw new UserError(`--size "${text}" is not a byte count`);
  return Number(text);
}

/** `loam fetch`: verified download of one blob into the store. */
export const fetchCommand: Command = {
  name: "fetch",
  help: HELP,
  async run(args) {
    const parsed = parseFlags("fetch", args, {
      ...CONFIG_OPTIONS,
      sha256: { type: "string" },
      size: { type: "string" },
    }, Number.POSITIVE_INFINITY);
    if (parsed.help) {
      println(HELP);
      return 0;
    }
    if (parsed.values.sha256 === undefined) {
      throw new UserError("fetch: --sha256 <hex> is required");
    }
    if (parsed.positionals.length === 0) throw new UserError("fetch: give at least one URL");
    const size = parseSize(parsed.values.size);
    const loaded = await loadConfigFromFlags(parsed.values);
    const explicitLevel = loaded.sources["log.level"] !== undefined;
    const logger = createLogger({
      level: explicitLevel ? loaded.config.log.level : "warn",
      format: loaded.config.log.format,
    });
    const paths = dataPathsFor(loaded.config.data.dir);
    await openDataDir(paths);
    const fetcher = new BlobFetcher(
      new BlobStore(paths.blobs),
      await fetchSettings(loaded.config),
      logger,
    );
    const progress = createProgressReporter();
    try {
      const { path } = await fetcher.ensure(
        {
          sha256: parsed.values.sha256,
          urls: parsed.positionals,
          ...(size !== undefined ? { size } : {}),
        },
        (p) => progress.update(p),
      );
      progress.stop();
      println(path);
      return 0;
    } finally {
      progress.stop(); // also on failure, before the error is printed
      fetcher.close();
    }
  },
};
