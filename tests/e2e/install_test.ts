import assert from "node:assert/strict";
import denoConfig from "../../deno.json" with { type: "json" };
import { runLoam } from "./harness.ts";
import { DEFAULT_UNIT, renderUnit } from "../../src/system/systemd_unit.ts";

const UNIT = "/etc/systemd/system/loam.service";
const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

Deno.test("loam install --dry-run prints exactly the unit and the steps, and changes nothing", async () => {
  const before = await exists(UNIT);
  const res = await runLoam([
    "install",
    "--dry-run",
    "--binary",
    "/bin/true",
    "--gpu",
    "--user",
    "loam",
    "--rw-path",
    "/etc/myapp",
  ]);
  assert.equal(res.code, 0, res.stderr);
  assert.equal(
    res.stdout,
    renderUnit({
      ...DEFAULT_UNIT,
      gpu: true,
      user: "loam",
      writablePaths: ["/etc/myapp"],
    }),
  );
  const installed = `/var/lib/loam/bin/${denoConfig.version.replaceAll(".", "\\.")}/loam`;
  assert.match(res.stderr, new RegExp(`would 1\\. copy /bin/true to ${installed} \\(mode 0755\\)`));
  assert.match(res.stderr, /would 2\. point \/var\/lib\/loam\/bin\/current at /);
  assert.match(
    res.stderr,
    /would 3\. link \/usr\/local\/bin\/loam to \/var\/lib\/loam\/bin\/current\/loam/,
  );
  assert.match(res.stdout, /^ExecStart=\/var\/lib\/loam\/bin\/current\/loam run --config/m);
  assert.match(res.stdout, /^RestartForceExitStatus=75$/m);
  assert.match(res.stderr, /would \d\. create system user loam unless it exists/);
  assert.match(res.stderr, /would \d\. systemctl enable --now loam/);
  assert.equal(await exists(UNIT), before);
});

Deno.test("loam install copies the running file, or from source names what to do", async () => {
  const res = await runLoam(["install", "--dry-run"]);
  assert.equal(res.code, 0);
  const binary = Deno.env.get("LOAM_TEST_BINARY");
  if (binary) {
    const self = Deno.realPathSync(binary).replaceAll(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    assert.match(res.stderr, new RegExp(`would 1\\. copy ${self} to /var/lib/loam/bin/\\S+/loam`));
  } else {
    assert.match(res.stderr, /this is `deno run` \(not a compiled loam\); pass --binary/);
  }
});

Deno.test("loam install and uninstall refuse clearly where systemd is not PID 1 or not root", async () => {
  const booted = await exists("/run/systemd/system");
  if (booted && Deno.uid() === 0) {
    console.warn("SKIP refusal test: this machine runs systemd as root; the test would install");
    return;
  }
  for (const args of [["install", "--binary", "/bin/true"], ["uninstall", "--purge"]]) {
    const res = await runLoam(args);
    assert.equal(res.code, 1, res.stderr);
    assert.match(res.stderr, /must run as root|systemd is not running as PID 1/);
    assert.match(res.stderr, /would 1\./);
  }
  assert.equal(await exists(UNIT), false);
});

Deno.test("loam uninstall --dry-run lists the steps and keeps data unless --purge", async () => {
  const keep = await runLoam(["uninstall", "--dry-run"]);
  assert.equal(keep.code, 0);
  // the installed files and their runtime go; the data dir itself stays
  assert.match(keep.stderr, /would \d\. remove \/usr\/local\/bin\/loam$/m);
  assert.match(keep.stderr, /would \d\. remove \/var\/lib\/loam\/bin$/m);
  assert.match(keep.stderr, /would \d\. remove \/var\/lib\/loam\/runtime$/m);
  assert.doesNotMatch(keep.stderr, /remove \/var\/lib\/loam$/m);
  const purge = await runLoam(["uninstall", "--dry-run", "--purge"]);
  assert.match(purge.stderr, /would \d\. remove \/var\/lib\/loam$/m);
});

Deno.test("loam install --fleet-key checks the key, installs it 0600 and names it in the unit", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const key = `${dir}/fleet.key`;
    const made = await runLoam(["keys", "fleet", "--out", key]);
    assert.equal(made.code, 0, made.stderr);
    const fingerprint = made.stdout.match(/sha256:[0-9a-f]{16}/)![0];
    const res = await runLoam([
      "install",
      "--dry-run",
      "--binary",
      "/bin/true",
      "--user",
      "loam",
      "--fleet-key",
      key,
    ]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^Environment=LOAM_MESH_FLEET_KEY_FILE=\/etc\/loam\/fleet\.key$/m);
    assert.match(
      res.stderr,
      new RegExp(
        `would \\d\\. install the fleet key ${fingerprint} as /etc/loam/fleet\\.key \\(mode 0600, owned by loam\\)`,
      ),
    );
    await Deno.writeTextFile(`${dir}/bad.key`, "not a key\n");
    const bad = await runLoam(["install", "--dry-run", "--fleet-key", `${dir}/bad.key`]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^loam: fleet key .*bad\.key is not a swarm\.key file/);
    assert.equal(bad.stdout, "", "nothing planned with a bad key");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
