import assert from "node:assert/strict";
import { detectContainerRuntimes } from "./container_runtimes.ts";

Deno.test("container runtimes are found on PATH only as executable files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/bin1`);
    await Deno.mkdir(`${dir}/bin2`);
    await Deno.writeTextFile(`${dir}/bin1/podman`, "#!/bin/sh\n", { mode: 0o755 });
    await Deno.writeTextFile(`${dir}/bin2/nerdctl`, "#!/bin/sh\n", { mode: 0o755 });
    await Deno.writeTextFile(`${dir}/bin2/docker`, "not executable", { mode: 0o644 });
    assert.deepEqual(
      await detectContainerRuntimes(`${dir}/bin1:${dir}/missing::${dir}/bin2`),
      ["containerd", "podman"],
    );
    assert.deepEqual(await detectContainerRuntimes(""), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
