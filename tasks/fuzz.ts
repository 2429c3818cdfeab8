/**
 * `deno task fuzz [--count N] [--seed S]`: hostile inputs against loam's parsers in process and
 * samples of them against real agent processes, by family (config, wire messages, API requests,
 * tar packages, model files). Prints a table per family and, last, `N inputs, N crashes, N
 * rejected with a reason`; exits 1 when anything crashed or was refused without a reason. The
 * same seed draws the same inputs.
 * @module
 */
import { parseArgs } from "node:util";
import { fuzzConfig } from "./fuzz_config.ts";
import { fuzzWire } from "./fuzz_wire.ts";
import { fuzzApi } from "./fuzz_api.ts";
import { fuzzTar } from "./fuzz_tar.ts";
import { fuzzModels } from "./fuzz_models.ts";
import { type FamilyTally, printReport } from "./fuzz_tally.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { count: { type: "string" }, seed: { type: "string" } },
});
const count = Number(values.count ?? "10000");
const seed = Number(values.seed ?? String(Date.now() % 2 ** 31));
if (!Number.isInteger(count) || count < 1 || !Number.isInteger(seed)) {
  console.error("usage: deno task fuzz [--count N] [--seed S]  (whole numbers)");
  Deno.exit(2);
}

/** Each family's share of `--count`. */
const SHARES = { config: 0.2, wire: 0.35, api: 0.2, tar: 0.1, models: 0.15 };

const dir = await Deno.makeTempDir({ prefix: "loam-fuzz-" });
for (const sub of Object.keys(SHARES)) await Deno.mkdir(`${dir}/${sub}`);
const families: FamilyTally[] = [];
try {
  console.error(`fuzz: seed ${seed}, ${count} inputs`);
  const share = (family: keyof typeof SHARES) => Math.max(1, Math.round(count * SHARES[family]));
  families.push(...await fuzzConfig(`${dir}/config`, share("config"), seed));
  families.push(...await fuzzWire(`${dir}/wire`, share("wire"), seed));
  families.push(...await fuzzApi(`${dir}/api`, share("api"), seed));
  families.push(...await fuzzTar(`${dir}/tar`, share("tar"), seed));
  families.push(...await fuzzModels(`${dir}/models`, share("models"), seed));
} finally {
  await Deno.remove(dir, { recursive: true });
}
Deno.exit(printReport(families, seed) ? 0 : 1);
