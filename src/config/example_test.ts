import assert from "node:assert/strict";
import { configKeys, envNameFor } from "./keys.ts";
import { loadConfig } from "./load.ts";

const EXAMPLE = new URL("../../config/loam.example.toml", import.meta.url).pathname;

Deno.test("config/loam.example.toml is valid and documents every key with its env name", async () => {
  const text = await Deno.readTextFile(EXAMPLE);
  await loadConfig({ configPath: EXAMPLE, env: {}, flags: [] });
  const uncommented = text.replace(/^# ([a-z_]+ = )/gm, "$1");
  const path = await Deno.makeTempFile({ suffix: ".toml" });
  try {
    await Deno.writeTextFile(path, uncommented);
    await loadConfig({ configPath: path, env: {}, flags: [] }); // the shown values are valid too
  } finally {
    await Deno.remove(path);
  }
  for (const key of configKeys()) {
    const name = key.slice(key.lastIndexOf(".") + 1);
    const section = key.slice(0, key.lastIndexOf("."));
    const sectionText = text.split(`[${section}]`)[1]?.split(/^\[/m)[0] ?? "";
    assert.match(
      sectionText,
      new RegExp(`^# ${name} = `, "m"),
      `${key} documented in [${section}]`,
    );
    assert.ok(text.includes(envNameFor(key)), `${envNameFor(key)} mentioned`);
  }
});
