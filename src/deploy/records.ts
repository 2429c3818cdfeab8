import { join } from "node:path";
import { z } from "zod";
import { DeploymentDirectiveSchema } from "../protocol/directive.ts";
import { type DeploymentState, DeploymentStateSchema } from "../protocol/status.ts";
import { atomicWriteFile } from "../system/atomic_write.ts";
import { isDiskFull } from "../system/disk.ts";
import { readBoundedJsonFile } from "../protocol/bounded_json.ts";
import { canTransition, TransitionRefused } from "./transitions.ts";

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

/** The largest record file read (a directive is at most ~1 MiB; its history is small). */
export const MAX_RECORD_BYTES = 8 * 1024 * 1024;
/** The largest seen-directives file read at start (100,000 ids of up to 128 characters). */
const MAX_SEEN_BYTES = 32 * 1024 * 1024;

/**
 * Writing a record failed (disk full, I/O error). The record in memory holds the new state all
 * the same, so the API and the mesh stay truthful; the write is tried again with the next one.
 */
export class RecordWriteError extends Error {
  /** True when the disk (or quota) is full. */
  readonly diskFull: boolean;

  constructor(path: string, cause: unknown) {
    const diskFull = isDiskFull(cause);
    super(
      `cannot write ${path}: ${diskFull ? "disk full" : (cause as Error)?.message ?? cause}`,
      { cause },
    );
    this.name = "RecordWriteError";
    this.diskFull = diskFull;
  }
}

/**
 * Moves a file that cannot be used out of the way (`<name>.unreadable`) so that start-up goes
 * on without it; says where it went, or why it could not be moved.
 */
async function quarantineFile(path: string): Promise<string> {
  try {
    await Deno.rename(path, `${path}.unreadable`);
    return `moved to ${path}.unreadable`;
  } catch (err) {
    return `left in place (${(err as Error).message})`;
  }
}

/**
 * The deployment records of one node: kept in memory, every change written atomically
 * (temp + fsync + rename) before it counts, so a crash leaves the last state whole. Every change
 * of state is checked against {@link ALLOWED_TRANSITIONS}.
 */
export class DeploymentRecords {
  readonly #dir: string;
  readonly #records = new Map<string, DeploymentRecord>();
  /** Records whose last write failed (disk full): written again with the next save. */
  readonly #unsaved = new Set<string>();

  constructor(dir: string) {
    this.#dir = dir;
  }

  /**
   * Reads every record. One that cannot be read (edited by hand, written by another version,
   * too large or too deep) is renamed to `<name>.unreadable` so the node still starts with the
   * rest; the problems are returned for the log.
   */
  async load(): Promise<string[]> {
    await Deno.mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const problems: string[] = [];
    for await (const entry of Deno.readDir(this.#dir)) {
      if (!entry.isFile || !entry.name.endsWith(".json")) continue;
      const path = join(this.#dir, entry.name);
      try {
        const record = RecordSchema.parse(await readBoundedJsonFile(path, MAX_RECORD_BYTES));
        this.#records.set(record.directive_id, record);
      } catch (err) {
        const first = (err as Error).message.split("\n")[0];
        problems.push(`${path} is unreadable (${first}); ${await quarantineFile(path)}`);
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

  /**
   * Writes a record (new or changed) to disk, then to memory. When the write fails the record
   * in memory changes all the same and a {@link RecordWriteError} is thrown; the write is tried
   * again with the next save of any record.
   */
  async save(record: DeploymentRecord): Promise<void> {
    const id = record.directive_id;
    const path = this.#pathOf(id);
    try {
      await this.#write(id, record);
    } catch (err) {
      this.#records.set(id, structuredClone(record));
      this.#unsaved.add(id);
      throw new RecordWriteError(path, err);
    }
    this.#records.set(id, structuredClone(record));
    this.#unsaved.delete(id);
    await this.#retryUnsaved();
  }

  /** Writes again the records whose last write failed, while the disk takes them. */
  async #retryUnsaved(): Promise<void> {
    for (const id of this.#unsaved) {
      const record = this.#records.get(id);
      if (!record) continue;
      try {
        await this.#write(id, record);
        this.#unsaved.delete(id);
      } catch {
        return; // still not taking writes: the next save tries again
      }
    }
  }

  /**
   * Moves a record to `state` (recording when) and saves it.
   * @throws {TransitionRefused} when the table does not allow the change (nothing is written)
   * @throws {RecordWriteError} when the write failed (the record in memory has changed)
   */
  async transition(
    id: string,
    state: DeploymentState,
    changes: Partial<Pick<DeploymentRecord, "progress_percent" | "error_message" | "instance_id">> =
      {},
  ): Promise<DeploymentRecord> {
    const current = this.#records.get(id);
    if (!current) throw new Error(`no deployment record ${id}`);
    if (!canTransition(current.state, state)) throw new TransitionRefused(id, current.state, state);
    const next: DeploymentRecord = { ...structuredClone(current), ...changes, state };
    if (current.state !== state) next.history.push({ state, at: new Date().toISOString() });
    await this.save(next);
    return next;
  }

  /** Deletes a record from disk and memory (DELETE of a deployment in a final state). */
  async remove(id: string): Promise<void> {
    await Deno.remove(this.#pathOf(id)).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
    this.#records.delete(id);
    this.#unsaved.delete(id);
  }

  /**
   * Takes a record that the agent cannot work with out of service: its file becomes
   * `<id>.json.unreadable` and it is forgotten; says where the file went, for the log.
   */
  async quarantine(id: string): Promise<string> {
    this.#records.delete(id);
    this.#unsaved.delete(id);
    return await quarantineFile(this.#pathOf(id));
  }

  #write(id: string, record: DeploymentRecord): Promise<void> {
    return atomicWriteFile(this.#pathOf(id), JSON.stringify(record, null, 2) + "\n", {
      mode: 0o600,
    });
  }

  #pathOf(id: string): string {
    return join(this.#dir, `${id}.json`);
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

  /**
   * Reads the file (absent = nothing seen yet). A file that cannot be read is moved aside and
   * the problem returned for the log: the node starts, and the deployment records still stop
   * a replay of every directive it acted on.
   */
  async load(): Promise<string | undefined> {
    try {
      const json = await readBoundedJsonFile(this.#path, MAX_SEEN_BYTES);
      this.#seen = new Map(Object.entries(SeenSchema.parse(json)));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      const first = (err as Error).message.split("\n")[0];
      return `${this.#path} is unreadable (${first}); ${await quarantineFile(this.#path)}`;
    }
  }

  /** True when `id` was seen before. */
  has(id: string): boolean {
    return this.#seen.has(id);
  }

  /**
   * Remembers `id` (durably) before the directive is acted on. It is remembered in memory even
   * when the write fails; a {@link RecordWriteError} then says why, and the next add retries.
   */
  async add(id: string): Promise<void> {
    this.#seen.set(id, new Date().toISOString());
    while (this.#seen.size > MAX_SEEN) this.#seen.delete(this.#seen.keys().next().value!);
    try {
      await atomicWriteFile(this.#path, JSON.stringify(Object.fromEntries(this.#seen)), {
        mode: 0o600,
      });
    } catch (err) {
      throw new RecordWriteError(this.#path, err);
    }
  }
}
