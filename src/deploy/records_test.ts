import assert from "node:assert/strict";
import { type DeploymentState, DeploymentStateSchema } from "../protocol/status.ts";
import { DeploymentDirectiveSchema } from "../protocol/directive.ts";
import { type DeploymentRecord, DeploymentRecords, SeenDirectives } from "./records.ts";
import { ALLOWED_TRANSITIONS, TransitionRefused } from "./transitions.ts";

const STATES = DeploymentStateSchema.options;

function record(id: string, state: DeploymentState): DeploymentRecord {
  return {
    directive_id: id,
    state,
    progress_percent: 0,
    source: "api",
    directive: DeploymentDirectiveSchema.parse({
      directive_id: id,
      issued_at: "2026-12-01T00:00:00Z",
      issuer_node_id: "c2",
      scope: { type: "broadcast" },
      artifact: {
        blob_hash: `sha256:${"0".repeat(64)}`,
        size_bytes: 1,
        artifact_type: { type: "config_package", target_path: "/tmp/x" },
      },
    }),
    history: [{ state, at: "2026-12-01T00:00:00Z" }],
  };
}

Deno.test("every transition the table refuses is refused, and the record stays as it was", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const records = new DeploymentRecords(dir);
    await records.load();
    let refused = 0;
    for (const from of STATES) {
      for (const to of STATES) {
        const id = `${from}-${to}`;
        await records.save(record(id, from));
        const before = await Deno.readTextFile(`${dir}/${id}.json`);
        if (ALLOWED_TRANSITIONS[from].includes(to)) {
          assert.equal((await records.transition(id, to)).state, to);
          continue;
        }
        refused++;
        await assert.rejects(
          records.transition(id, to, { error_message: "late" }),
          (err) =>
            err instanceof TransitionRefused && err.message.includes(`from ${from} to ${to}`),
        );
        assert.equal(records.get(id)!.state, from);
        assert.equal(records.get(id)!.error_message, undefined);
        assert.equal(await Deno.readTextFile(`${dir}/${id}.json`), before);
      }
    }
    // the final states have no way out; active leaves only for failed or rolled_back
    assert.deepEqual(ALLOWED_TRANSITIONS.failed, []);
    assert.deepEqual(ALLOWED_TRANSITIONS.rolled_back, []);
    assert.deepEqual(ALLOWED_TRANSITIONS.active, ["failed", "rolled_back"]);
    assert.equal(refused, 49 - 18);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("records that are too deep, too large or invalid are quarantined at load", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const good = record("good", "active");
    await Deno.writeTextFile(`${dir}/good.json`, JSON.stringify(good));
    const deep = { ...good, directive_id: "deep" } as Record<string, unknown>;
    const nest = 3000;
    await Deno.writeTextFile(
      `${dir}/deep.json`,
      JSON.stringify(deep).replace(
        '"config":{}',
        `"config":${"[".repeat(nest)}${"]".repeat(nest)}`,
      ),
    );
    await Deno.writeTextFile(`${dir}/big.json`, " ".repeat(9 * 1024 * 1024) + "{}");
    await Deno.writeTextFile(`${dir}/junk.json`, "{nope");
    const records = new DeploymentRecords(dir);
    const problems = await records.load();
    assert.deepEqual(records.list().map((r) => r.directive_id), ["good"]);
    assert.equal(problems.length, 3);
    assert.match(problems.join("\n"), /deep\.json is unreadable \(JSON nests deeper than 64/);
    assert.match(problems.join("\n"), /big\.json is unreadable \(\d+ bytes, more than/);
    for (const name of ["deep", "big", "junk"]) {
      assert.ok((await Deno.stat(`${dir}/${name}.json.unreadable`)).isFile);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an unreadable seen-directives file is moved aside, not fatal", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/seen.json`, "[".repeat(5000));
    const seen = new SeenDirectives(`${dir}/seen.json`);
    assert.match((await seen.load())!, /seen\.json is unreadable .*moved to .*\.unreadable/);
    assert.equal(seen.has("x"), false);
    await seen.add("x");
    assert.equal(await new SeenDirectives(`${dir}/seen.json`).load(), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
