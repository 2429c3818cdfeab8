/**
 * What `deno task fuzz` counts: for each family of hostile inputs, how many were accepted (a
 * mutation that is still valid), rejected with a reason, rejected without one, or crashed
 * something (an agent process died or answered 500, a parser threw a programming error such as
 * a TypeError, or hung).
 * @module
 */

/** How one input ended. */
export type Outcome =
  | { kind: "accepted" }
  | { kind: "rejected"; reason: string }
  | { kind: "crash"; what: string };

/** JavaScript's own errors: thrown by a bug, never on purpose with a reason for the user. */
const BUG_ERRORS = ["TypeError", "ReferenceError", "RangeError", "EvalError"];

/**
 * Reads a failure (an error's name and message, here or reported by a child process) as an
 * outcome: a message is a reason, one of JavaScript's own errors is a crash.
 */
export function outcomeOfFailure(
  name: string,
  message: string,
): Exclude<Outcome, { kind: "accepted" }> {
  if (BUG_ERRORS.includes(name)) return { kind: "crash", what: `${name}: ${message}` };
  return { kind: "rejected", reason: message.trim() };
}

/** Reads a thrown value as an outcome (see {@link outcomeOfFailure}). */
export function outcomeOfError(err: unknown): Exclude<Outcome, { kind: "accepted" }> {
  if (!(err instanceof Error)) return { kind: "crash", what: `threw a non-error: ${String(err)}` };
  return outcomeOfFailure(err.name, err.message);
}

/** Runs `work` on one input: resolving is accepted, throwing is judged, hanging is a crash. */
export async function judge(work: () => Promise<unknown>, timeoutMs = 10_000): Promise<Outcome> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<Outcome>((resolve) => {
    timer = setTimeout(
      () => resolve({ kind: "crash", what: `hung for more than ${timeoutMs} ms` }),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([work().then((): Outcome => ({ kind: "accepted" })), hung]);
  } catch (err) {
    return outcomeOfError(err);
  } finally {
    clearTimeout(timer);
  }
}

/** One family's counts, and the first few inputs that crashed or were refused silently. */
export class FamilyTally {
  readonly name: string;
  inputs = 0;
  accepted = 0;
  rejected = 0;
  /** Rejected, but with an empty reason: the user would not know what was wrong. */
  unexplained = 0;
  crashes = 0;
  /** Reasons seen, with counts: the table's evidence that each input was told what was wrong. */
  readonly reasons = new Map<string, number>();
  readonly examples: string[] = [];

  constructor(name: string) {
    this.name = name;
  }

  /** Counts `outcome` for the input described by `input` (kept when it is a failure). */
  record(outcome: Outcome, input: () => string): void {
    this.inputs++;
    if (outcome.kind === "accepted") {
      this.accepted++;
    } else if (outcome.kind === "crash") {
      this.crashes++;
      this.#keep(`crash: ${outcome.what} <- ${input()}`);
    } else if (outcome.reason === "") {
      this.unexplained++;
      this.#keep(`no reason <- ${input()}`);
    } else {
      this.rejected++;
      const key = outcome.reason.replace(/\/[^\s"':]+/g, "<path>").replace(/\d+/g, "N")
        .slice(0, 60);
      this.reasons.set(key, (this.reasons.get(key) ?? 0) + 1);
    }
  }

  #keep(line: string): void {
    if (this.examples.length < 5) this.examples.push(line.slice(0, 400));
  }
}

/** Prints one Markdown table of all families, their failures, and the required last line. */
export function printReport(families: FamilyTally[], seed: number): boolean {
  console.log(`\nfuzz (seed ${seed})`);
  console.log(
    "| family | inputs | accepted (still valid) | rejected with a reason | without | crashes |",
  );
  console.log("|---|---|---|---|---|---|");
  for (const f of families) {
    console.log(
      `| ${f.name} | ${f.inputs} | ${f.accepted} | ${f.rejected} | ${f.unexplained} | ${f.crashes} |`,
    );
  }
  for (const f of families) {
    const top = [...f.reasons.entries()].sort((a, b) => b[1] - a[1]).slice(0, 3);
    console.log(
      `${f.name}: most common reasons: ${top.map(([r, n]) => `${n}× "${r}"`).join("; ")}`,
    );
    for (const example of f.examples) console.log(`  ${example}`);
  }
  const sum = (pick: (f: FamilyTally) => number) => families.reduce((n, f) => n + pick(f), 0);
  const crashes = sum((f) => f.crashes);
  const unexplained = sum((f) => f.unexplained);
  console.log(
    `${sum((f) => f.inputs)} inputs, ${crashes} crashes, ${sum((f) => f.rejected)} rejected ` +
      "with a reason",
  );
  return crashes === 0 && unexplained === 0;
}
