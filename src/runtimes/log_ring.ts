/** One captured output line of an instance. */
export interface LogLine {
  at: string;
  stream: "stdout" | "stderr";
  line: string;
}

/** The last `capacity` output lines of an instance (older ones are dropped). */
export class LogRing {
  readonly #capacity: number;
  readonly #lines: LogLine[] = [];

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /** Adds a line, dropping the oldest beyond capacity. */
  push(stream: LogLine["stream"], line: string): void {
    this.#lines.push({ at: new Date().toISOString(), stream, line });
    if (this.#lines.length > this.#capacity) this.#lines.shift();
  }

  /** The last `count` lines (all by default), oldest first. */
  tail(count = this.#capacity): LogLine[] {
    return this.#lines.slice(-count);
  }
}
