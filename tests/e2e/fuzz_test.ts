/**
 * `deno task fuzz` at a small count, as CI runs it: every family, real agents included, ends
 * with no crash and every refused input told what was wrong; the same seed draws the same
 * inputs. The README gives the full-size figures.
 * @module
 */
import assert from "node:assert/strict";

async function fuzz(count: number, seed: number): Promise<{ code: number; stdout: string }> {
  const out = await new Deno.Command("deno", {
    args: ["task", "--quiet", "fuzz", "--count", String(count), "--seed", String(seed)],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
}

Deno.test({
  name: "deno task fuzz: hostile inputs of every family, no crash, every refusal with a reason",
  sanitizeResources: false,
  fn: async () => {
    const seed = Date.now() % 100_000;
    const { code, stdout } = await fuzz(400, seed);
    const lines = stdout.trim().split("\n");
    assert.equal(code, 0, `seed ${seed}:\n${stdout}`);
    const last = lines.at(-1)!.match(/^(\d+) inputs, (\d+) crashes, (\d+) rejected with a reason$/);
    assert.ok(last, stdout);
    assert.equal(last[2], "0");
    for (
      const family of [
        "config files",
        "refused files given to `loam run`",
        "wire messages",
        "hostile peer, open mesh",
        "fleet member with the key",
        "API requests",
        "config packages",
        "ONNX files",
        "GGUF files",
        "WASM modules",
      ]
    ) {
      const row = lines.find((l) => l.startsWith("| ") && l.includes(family));
      assert.ok(row, `a row for ${family}`);
      const [inputs, , rejected, without, crashes] = row.split("|").slice(2, 7).map(Number);
      assert.ok(inputs! > 0 && rejected! > 0, row);
      assert.equal(without, 0, row);
      assert.equal(crashes, 0, row);
    }
  },
});
