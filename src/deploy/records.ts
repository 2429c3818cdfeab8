import { join } from "node:path";
import { z } from "zod";
import { DeploymentDirectiveSchema } from "../protocol/directive.ts";
import { type DeploymentState, DeploymentStateSchema } from "../protocol/status.ts";
import { atomicWriteFile } from "../system/atomic_write.ts";
import { UserError } from "../system/errors.ts";

const RecordSchema = z.strictObject({
  directive_id: z.string(),
  state: DeploymentStateSchema,
  progress_percent: z.number(),
  error_message: z.string().optional(),
  instance_id: z.string().optional(),
  source: z.enum(["api", "mesh"]),
  directive: DeploymentDirectiveSchema,
  history: z.array(z.strictObject({ state: DeploymentStateSchema, at: z.string() })),
});

/** A deployment on this node, as stored in `<data>/deployments/<id>.json` and shown by the API. */
export type DeploymentRecord = z.infer<typeof RecordSchema>;

/**
 * The deployment records of one node: kept in memory, every change written atomically
 * (temp + fsync + rename) before it counts, so a crash leaves the last state whole.
 */
export class DeploymentRecords {
  readonly #dir: string;
  readonly #records = new Map<string, DeploymentRecord>();

  constructor(dir: string) {
    this.#dir = dir;
  }

  /**
   * Reads every record. One that cannot be read (edited by hand, written by another version)
   * is renamed to `<name>.unreadable` so the node still starts with the rest; the problems are
   * returned for the log.
   */
  async load(): Promise<string[]> {
    await Deno.mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const problems: string[] = [];
    for await (const entry of Deno.readDir(this.#dir)) {
      if (!entry.isFile || !entry.name.endsWith(".json")) continue;
      const path = join(this.#dir, entry.name);
      try {
        const record = RecordSchema.parse(JSON.parse(await Deno.readTextFile(path)));
        this.#records.set(record.directive_id, record);
      } catch (err) {
        await Deno.rename(path, `${path}.unreadable`);
        const first = (err as Error).message.split("\n")[0];
        problems.push(`${path} is unreadable (${first}); moved to ${path}.unreadable`);
      }
    }
    return problems;
  }

  /** The record of `id`, if any. */
  get(id: string): DeploymentRecord | undefined {
    return this.#records.get(id);
  }

  /** All records, newest directive first. */
  list(): DeploymentRecord[] {
    return [...this.#records.values()].sort((a, b) =>
      b.directive.issued_at.localeCompare(a.directive.issued_at)
    );
  }

  /** Writes a record (new or changed) to disk, then to memory. */
  async save(record: DeploymentRecord): Promise<void> {
    const path = join(this.#dir, `${record.directive_id}.json`);
    await atomicWriteFile(path, JSON.stringify(record, null, 2) + "\n", { mode: 0o600 });
    this.#records.set(record.directive_id, structuredClone(record));
  }

  /** Moves a record to `state` (recording when) and saves it. */
  async transition(
    id: string,
    state: DeploymentState,
    changes: Partial<Pick<DeploymentRecord, "progress_percent" | "error_message" | "instance_id">> =
      {},
  ): Promise<DeploymentRecord> {
    const current = this.#records.get(id);
    if (!current) throw new Error(`no deployment record ${id}`);
    const next: DeploymentRecord = { ...structuredClone(current), ...changes, state };
    if (current.state !== state) next.history.push({ state, at: new Date().toISOString() });
    await this.save(next);
    return next;
  }
}

const SeenSchema = z.record(z.string(), z.string());
/** Ids remembered for replay protection; the oldest are forgotten beyond this. */
const MAX_SEEN = 100_000;

/** Ids of every directive this node has seen, persisted so that a replay is ignored after restarts. */
export class SeenDirectives {
  readonly #path: string;
  #seen = new Map<string, string>();

  constructor(path: string) {
    this.#path = path;
  }

  /** Reads the file (absent = nothing seen yet). */
  async load(): Promise<void> {
    const text = await Deno.readTextFile(this.#path).catch((err) => {
      if (err instanceof Deno.errors.NotFound) return "{}";
      throw err;
    });
    try {
      this.#seen = new Map(Object.entries(SeenSchema.parse(JSON.parse(text))));
    } catch (err) {
      throw new UserError(`${this.#path} is unreadable: ${(err as Error).message}`);
    }
  }

  /** True when `id` was seen before. */
  has(id: string): boolean {
    return this.#seen.has(id);
  }

  /** Remembers `id` (durably) before the directive is acted on. */
  async add(id: string): Promise<void> {
    this.#seen.set(id, new Date().toISOString());
    while (this.#seen.size > MAX_SEEN) this.#seen.delete(this.#seen.keys().next().value!);
    await atomicWriteFile(this.#path, JSON.stringify(Object.fromEntries(this.#seen)), {
      mode: 0o600,
    });
  }
}
