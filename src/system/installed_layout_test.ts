import assert from "node:assert/strict";
import { join } from "node:path";
import { type InstalledLayout, installFileSteps } from "./installed_layout.ts";

Deno.test("installing two versions: current points at the newer, previous at the older, the PATH link at current", async () => {
  const root = await Deno.makeTempDir();
  try {
    const layout: InstalledLayout = {
      binDir: join(root, "bin"),
      current: join(root, "bin", "current"),
      previous: join(root, "bin", "previous"),
      executable: join(root, "bin", "current", "loam"),
      pathLink: join(root, "usr", "local", "bin", "loam"),
    };
    for (const version of ["1.0.0", "1.1.0", "1.1.0"]) {
      const source = join(root, `loam-${version}`);
      await Deno.writeTextFile(source, `#!/bin/sh\necho ${version}\n`);
      for (const step of installFileSteps(source, version, layout)) await step.run();
    }
    assert.equal(await Deno.readLink(layout.current), "1.1.0");
    assert.equal(await Deno.readLink(layout.previous), "1.0.0", "reinstalling 1.1.0 keeps 1.0.0");
    assert.equal(await Deno.readLink(layout.pathLink), layout.executable);
    assert.equal(await Deno.readTextFile(layout.pathLink), "#!/bin/sh\necho 1.1.0\n");
    assert.equal((await Deno.stat(join(layout.binDir, "1.0.0", "loam"))).mode! & 0o777, 0o755);
    assert.throws(() => installFileSteps("/x", "current", layout), /cannot name a directory/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
