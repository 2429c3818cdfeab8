import assert from "node:assert/strict";
import { DEFAULT_UNIT, renderUnit, type UnitOptions } from "./systemd_unit.ts";

const ANALYZE = "/usr/bin/systemd-analyze";
const analyzeMissing = await Deno.stat(ANALYZE).then(() => undefined, () => `${ANALYZE} not found`);
if (analyzeMissing) console.warn(`SKIP systemd unit checks: ${analyzeMissing}`);

// as root the agent keeps CAP_CHOWN, CAP_SETUID/GID, CAP_KILL, CAP_DAC_OVERRIDE and CAP_FOWNER to
// run native workloads as workloads.user (booted under systemd, without them none started): 2.7
const VARIANTS: [string, Partial<UnitOptions>, number][] = [
  ["default", {}, 3.0],
  ["--user loam", { user: "loam" }, 2.0],
  ["--gpu", { gpu: true }, 3.0],
  ["--rw-path", { writablePaths: ["/etc/myapp"] }, 3.0],
  ["--containers", { containers: true }, 6.5],
];

/** Writes the unit beside an executable ExecStart (verify checks that it exists). */
async function analyze(options: Partial<UnitOptions>, verb: string[]) {
  const dir = await Deno.makeTempDir();
  try {
    const unit = `${dir}/loam.service`;
    await Deno.writeTextFile(
      unit,
      renderUnit({ ...DEFAULT_UNIT, binary: "/bin/true", ...options }),
    );
    const out = await new Deno.Command(ANALYZE, {
      args: [...verb, unit],
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("config/loam.service is the unit `loam install` writes by default", async () => {
  const shipped = await Deno.readTextFile(new URL("../../config/loam.service", import.meta.url));
  assert.equal(shipped, renderUnit(DEFAULT_UNIT));
});

Deno.test("the unit lets V8 run: writable+executable memory and memory protection keys", () => {
  for (const [, options] of VARIANTS) {
    const unit = renderUnit({ ...DEFAULT_UNIT, ...options });
    assert.doesNotMatch(unit, /^MemoryDenyWriteExecute/m);
    // V8 uses memory protection keys: without @pkey systemd killed the agent with SIGSYS at start
    assert.match(unit, /^SystemCallFilter=@system-service @pkey/m);
    assert.match(unit, /^SystemCallErrorNumber=EPERM$/m);
  }
});

Deno.test({
  name: "systemd-analyze verifies every unit variant without a word on stderr",
  ignore: analyzeMissing !== undefined,
  async fn() {
    for (const [name, options] of VARIANTS) {
      const { code, stderr } = await analyze(options, ["verify"]);
      assert.equal(stderr, "", `${name}: ${stderr}`);
      assert.equal(code, 0, name);
    }
  },
});

Deno.test({
  name: "systemd-analyze security rates each variant's exposure under its threshold",
  ignore: analyzeMissing !== undefined,
  async fn() {
    for (const [name, options, threshold] of VARIANTS) {
      const { stdout } = await analyze(options, ["security", "--offline=true"]);
      const match = stdout.match(/Overall exposure level for loam\.service: ([\d.]+)/);
      assert.ok(match, `${name}: ${stdout.slice(-300)}`);
      assert.ok(Number(match[1]) <= threshold, `${name}: exposure ${match[1]} > ${threshold}`);
    }
  },
});
