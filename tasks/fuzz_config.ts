/**
 * Fuzz family "config": TOML files and LOAM_* values through the config loader, in process (an
 * agent start costs ~0.5 s); a refusal must be a UserError (one line, exit 2, naming the key).
 * A sample of the refused files is then given to real `loam run` processes, which must exit 2
 * with one line on stderr.
 * @module
 */
import fc from "fast-check";
import { stringify } from "smol-toml";
import { loadConfig } from "../src/config/load.ts";
import { configKeys, envNameFor } from "../src/config/keys.ts";
import { UserError } from "../src/system/errors.ts";
import { loopbackRunArgs, runLoam } from "../tests/e2e/harness.ts";
import { describe, draw, hostileValue, mutatedBytes, randomBytes } from "./fuzz_inputs.ts";
import { FamilyTally, type Outcome, outcomeOfError } from "./fuzz_tally.ts";

/** A valid file to mutate: a few keys of each kind (string, number, list, boolean, sub-table). */
const VALID = new TextEncoder().encode(stringify({
  node: { id: "edge-01", capabilities: ["camera"] },
  api: { listen: "127.0.0.1:7411", public_metrics: false },
  mesh: {
    listen: "/ip4/127.0.0.1/tcp/7412",
    advert_interval: 30,
    limits: { gossip_per_second: 200 },
  },
  fetch: { retries: 5, sources: "peers-first" },
  deploy: { directive_ttl_hours: 168 },
}));

/** Keys the real agents get as flags (loopback ports, their data dir, JSON logs): a file
 * refused for one of these would start, the flag winning. */
const OVERRIDDEN = ["api.listen", "mesh.listen", "data.dir", "log.format"];

/** Real `loam run` starts given a refused file. */
const AGENT_SAMPLE = 4;

type ConfigInput = { file: Uint8Array } | { env: Record<string, string> };

function inputs(count: number, seed: number): ConfigInput[] {
  const keys = configKeys();
  const tomlOf = (tree: unknown) => {
    try {
      return new TextEncoder().encode(stringify(tree as Record<string, unknown>));
    } catch {
      return new TextEncoder().encode(String(tree));
    }
  };
  const keyed = fc.tuple(fc.constantFrom(...keys), hostileValue()).map(([key, value]) => {
    const [section, ...rest] = key.split(".");
    let tree: Record<string, unknown> = { [rest.at(-1)!]: value };
    for (const part of rest.slice(0, -1).reverse()) tree = { [part]: tree };
    return tomlOf({ [section!]: tree });
  });
  const file = fc.oneof(
    { arbitrary: keyed, weight: 4 },
    { arbitrary: mutatedBytes(VALID), weight: 4 },
    { arbitrary: randomBytes(), weight: 1 },
    { arbitrary: fc.string({ unit: "binary", maxLength: 300 }).map((s) => tomlOf(s)), weight: 1 },
  ).map((bytes): ConfigInput => ({ file: bytes }));
  const env = fc.tuple(
    fc.oneof(fc.constantFrom(...keys.map(envNameFor)), fc.string().map((s) => `LOAM_${s}`)),
    fc.oneof(fc.string({ unit: "binary", maxLength: 200 }), fc.constantFrom("", "-1", "1e999")),
  ).map(([name, value]): ConfigInput => ({ env: { [name]: value } }));
  return draw(fc.oneof({ arbitrary: file, weight: 3 }, { arbitrary: env, weight: 1 }), count, seed);
}

async function loadOne(input: ConfigInput, path: string): Promise<Outcome> {
  if ("file" in input) await Deno.writeFile(path, input.file);
  try {
    await loadConfig(
      "file" in input ? { configPath: path, env: {}, flags: [] } : {
        env: input.env,
        flags: [],
      },
    );
    return { kind: "accepted" };
  } catch (err) {
    // the agent turns only a UserError into one line and exit 2; anything else is a stack trace
    if (err instanceof UserError) return { kind: "rejected", reason: err.message };
    const outcome = outcomeOfError(err);
    return outcome.kind === "crash"
      ? outcome
      : { kind: "crash", what: `not a UserError: ${outcome.reason}` };
  }
}

/** Runs the family; returns its tallies (in process, then the sample through real agents). */
export async function fuzzConfig(dir: string, count: number, seed: number): Promise<FamilyTally[]> {
  const tally = new FamilyTally("config files and LOAM_* values");
  const agentTally = new FamilyTally("config: refused files given to `loam run`");
  const refused: string[] = [];
  let n = 0;
  for (const input of inputs(count, seed)) {
    const path = `${dir}/config-${n++}.toml`;
    const outcome = await loadOne(input, path);
    tally.record(
      outcome,
      () => "file" in input ? describe(input.file) : describe(input.env),
    );
    if (
      outcome.kind === "rejected" && "file" in input && refused.length < AGENT_SAMPLE &&
      !OVERRIDDEN.some((key) => outcome.reason.includes(key))
    ) {
      refused.push(path);
    } else if ("file" in input) {
      await Deno.remove(path);
    }
  }
  for (const path of refused) {
    const res = await runLoam([...loopbackRunArgs(`${dir}/agent-data`), "--config", path]);
    const lines = res.stderr.trim().split("\n");
    agentTally.record(
      res.code === 2 && lines.length === 1 && lines[0]!.startsWith("loam: ")
        ? { kind: "rejected", reason: lines[0]! }
        : { kind: "crash", what: `exit ${res.code}, stderr: ${res.stderr.slice(0, 300)}` },
      () => path,
    );
  }
  return [tally, agentTally];
}
