/**
 * A workload's output kept in two files it appends to, not in pipes to the agent: a pipe dies
 * with the agent that reads it, so a program writing to one cannot outlive a restart or a
 * self-update; a file can, and the next agent reads on where the last one stopped.
 * @module
 */
import { sleep } from "../system/sleep.ts";
import type { LogLine, LogRing } from "./log_ring.ts";
import type { Logger } from "../system/logger.ts";
import type { WorkloadUser } from "../system/workload_user.ts";

/** How often the files are read for new lines. */
const POLL_MS = 200;
/** Past this size a file is emptied once read (the program appends, so it writes on at 0). */
const ROTATE_BYTES = 4 * 1024 * 1024;
/** How much of a file's end an adopting agent reads back into the ring (lines from before). */
const BACKLOG_BYTES = 64 * 1024;
/** The longest line kept whole; a longer one is cut there (a program printing no newline). */
const MAX_LINE = 16 * 1024;

const STREAMS = ["stdout", "stderr"] as const;

/**
 * `<base>.stdout` and `<base>.stderr`, created by the agent (owned by the workload user, in a
 * directory the workload cannot write, so it cannot swap one for a link to a file the agent may
 * read and it may not), appended to by the program through its shell wrapper, and followed into
 * the instance's log ring and the agent log (`instance output`).
 */
export class OutputFiles {
  readonly #paths: Record<LogLine["stream"], string>;
  #offsets: Record<LogLine["stream"], number> = { stdout: 0, stderr: 0 };
  #partial: Record<LogLine["stream"], string> = { stdout: "", stderr: "" };
  #following?: { stopper: AbortController; done: Promise<void> };
  #reading: Promise<void> = Promise.resolve();

  /** `base`: the path the two file names start with, e.g. `<instances>/<id>`. */
  constructor(base: string) {
    this.#paths = { stdout: `${base}.stdout`, stderr: `${base}.stderr` };
  }

  /** The file each stream goes to. */
  get paths(): Readonly<Record<LogLine["stream"], string>> {
    return this.#paths;
  }

  /**
   * Creates both files where missing (mode 0600, owned by `user` when given, who must be able to
   * append to them); what an earlier run wrote stays.
   */
  async prepare(user?: WorkloadUser): Promise<void> {
    for (const stream of STREAMS) {
      const path = this.#paths[stream];
      (await Deno.open(path, { append: true, create: true, mode: 0o600 })).close();
      if (user) await Deno.chown(path, user.uid, user.gid);
    }
  }

  /**
   * Follows both files into `ring` and `log` until {@link stop}. With `backlog` (adopting a
   * program a previous agent started), the last lines already there go into the ring only, and
   * following starts at the end; without, from where this object last read.
   */
  async follow(ring: LogRing, log: Logger, backlog = false): Promise<void> {
    if (this.#following) return;
    if (backlog) await this.#readBacklog(ring);
    const stopper = new AbortController();
    const done = (async () => {
      while (!stopper.signal.aborted) {
        await sleep(POLL_MS, stopper.signal).catch(() => {});
        await this.read(ring, log);
      }
    })();
    this.#following = { stopper, done };
  }

  /** Stops following, after a last read of what is there. */
  async stop(): Promise<void> {
    const following = this.#following;
    this.#following = undefined;
    following?.stopper.abort();
    await following?.done;
  }

  /**
   * Reads what both files gained since the last read into `ring` and `log`; empties a file past
   * {@link ROTATE_BYTES} once read. One read at a time: the poll and an exit's last read share it.
   */
  read(ring: LogRing, log: Logger): Promise<void> {
    this.#reading = this.#reading.then(async () => {
      for (const stream of STREAMS) {
        await this.#readStream(stream, ring, log).catch((err) => {
          if (!(err instanceof Deno.errors.NotFound)) {
            log.debug("output not read", { stream, error: err });
          }
        });
      }
    });
    return this.#reading;
  }

  /** Removes both files (the instance is gone). */
  async remove(): Promise<void> {
    await this.stop();
    for (const stream of STREAMS) await Deno.remove(this.#paths[stream]).catch(() => {});
  }

  async #readStream(stream: LogLine["stream"], ring: LogRing, log: Logger): Promise<void> {
    // a file smaller than what was read was emptied (a rotation, a fresh install): from its top
    const { from, bytes } = await readEnd(
      this.#paths[stream],
      (size) => size < this.#offsets[stream] ? 0 : this.#offsets[stream],
    );
    if (bytes.length === 0 && from === this.#offsets[stream]) return;
    this.#offsets[stream] = from + bytes.length;
    let text = this.#partial[stream] + new TextDecoder().decode(bytes);
    let nl;
    while ((nl = text.indexOf("\n")) >= 0) {
      this.#emit(stream, text.slice(0, nl), ring, log);
      text = text.slice(nl + 1);
    }
    if (text.length > MAX_LINE) {
      this.#emit(stream, text.slice(0, MAX_LINE), ring, log);
      text = "";
    }
    this.#partial[stream] = text;
    if (this.#offsets[stream] >= ROTATE_BYTES) {
      await Deno.truncate(this.#paths[stream], 0);
      this.#offsets[stream] = 0;
    }
  }

  #emit(stream: LogLine["stream"], line: string, ring: LogRing, log: Logger): void {
    ring.push(stream, line);
    log.info("instance output", { stream, line });
  }

  /** The last lines of each file into `ring` (not the agent log: it had them), offsets at the end. */
  async #readBacklog(ring: LogRing): Promise<void> {
    for (const stream of STREAMS) {
      const { from, bytes } = await readEnd(
        this.#paths[stream],
        (size) => Math.max(0, size - BACKLOG_BYTES),
      ).catch(() => ({ from: 0, bytes: new Uint8Array() }));
      const lines = new TextDecoder().decode(bytes).split("\n");
      const last = lines.pop()!;
      // a cut first line is not a line
      for (const line of from > 0 ? lines.slice(1) : lines) ring.push(stream, line);
      this.#offsets[stream] = from + bytes.length - new TextEncoder().encode(last).length;
      this.#partial[stream] = "";
    }
  }
}

/** The bytes of `path` from `start(size)` to the size it has now. */
async function readEnd(
  path: string,
  start: (size: number) => number,
): Promise<{ from: number; bytes: Uint8Array }> {
  using file = await Deno.open(path);
  const size = (await file.stat()).size;
  const from = start(size);
  await file.seek(from, Deno.SeekMode.Start);
  const bytes = new Uint8Array(Math.max(0, size - from));
  let got = 0;
  while (got < bytes.length) {
    const n = await file.read(bytes.subarray(got));
    if (n === null) break;
    got += n;
  }
  return { from, bytes: bytes.subarray(0, got) };
}
