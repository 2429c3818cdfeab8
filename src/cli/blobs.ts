import type { Command } from "./command.ts";
import { parseAction, println } from "./command.ts";
import { formatTable } from "./table.ts";
import { CONFIG_OPTIONS, CONFIG_OPTIONS_HELP, loadConfigFromFlags } from "./config_flags.ts";
import { BlobStore } from "../blobs/store.ts";
import { collectGarbage } from "../blobs/gc.ts";
import { verifyAll } from "../blobs/verify_all.ts";
import { blobReferences, blobsReport } from "../deploy/references.ts";
import { dataPathsFor, openDataDir } from "../system/paths.ts";

const HELP = `Usage:
  loam blobs ls [--json]               verified blobs (size, commit time, referencing deployments)
                                       and partial downloads
  loam blobs gc [--dry-run] [--json]   remove blobs no deployment references, and partial
                                       downloads older than blobs.partial_max_age_hours
  loam blobs verify [--json]           re-hash every blob; mismatches are moved to
                                       <data>/blobs/quarantine/ (exit 1 if any)

${CONFIG_OPTIONS_HELP}`;

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** `loam blobs`: list, garbage-collect and re-verify the blob store. */
export const blobsCommand: Command = {
  name: "blobs",
  help: HELP,
  async run(args) {
    const parsed = parseAction("blobs", HELP, args, { ls: 0, gc: 0, verify: 0 }, {
      ...CONFIG_OPTIONS,
      json: { type: "boolean" },
      "dry-run": { type: "boolean" },
    });
    if (parsed.exit !== undefined) return parsed.exit;
    const { action } = parsed;
    const loaded = await loadConfigFromFlags(parsed.values);
    const paths = dataPathsFor(loaded.config.data.dir);
    await openDataDir(paths);
    const store = new BlobStore(paths.blobs);
    await store.init();
    const json = parsed.values.json ?? false;
    switch (action) {
      case "ls": {
        const report = await blobsReport(store, paths.deployments);
        const { blobs, partials } = report;
        if (json) {
          println(JSON.stringify(report, null, 2));
          return 0;
        }
        println(formatTable(["SHA256", "SIZE", "SINCE", "USED BY"], [
          ...blobs.map((b) => [
            b.sha256,
            mib(b.size_bytes),
            b.committed_at,
            b.referenced_by.length ? b.referenced_by.join(",") : "-",
          ]),
          ...partials.map((p) => [p.sha256, mib(p.bytes), p.updated_at, "partial"]),
        ]));
        return 0;
      }
      case "gc": {
        const report = await collectGarbage(store, {
          references: await blobReferences(paths.deployments),
          partialMaxAgeMs: loaded.config.blobs.partial_max_age_hours * 3600_000,
          dryRun: parsed.values["dry-run"],
        });
        if (json) {
          println(JSON.stringify(report, null, 2));
          return 0;
        }
        const verb = report.dry_run ? "would remove" : "removed";
        for (const b of report.removed_blobs) {
          println(`${verb} blob ${b.sha256} (${mib(b.size_bytes)})`);
        }
        for (const p of report.removed_partials) {
          println(`${verb} partial ${p.sha256} (${mib(p.bytes)})`);
        }
        println(
          `${verb} ${report.removed_blobs.length} blobs and ${report.removed_partials.length} partials, ` +
            `${mib(report.freed_bytes)}; kept ${report.kept_blobs} referenced blobs`,
        );
        return 0;
      }
      case "verify": {
        const results = await verifyAll(store, (r) => {
          if (!json) {
            println(
              r.ok ? `ok   ${r.sha256}` : `BAD  ${r.sha256} quarantined to ${r.quarantined_to}`,
            );
          }
        });
        const bad = results.filter((r) => !r.ok).length;
        if (json) println(JSON.stringify(results, null, 2));
        else println(`${results.length - bad} ok, ${bad} bad`);
        return bad === 0 ? 0 : 1;
      }
    }
  },
};
