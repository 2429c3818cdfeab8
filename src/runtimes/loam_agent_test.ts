import assert from "node:assert/strict";
import { join } from "node:path";
import { LoamAgentAdapter, type SelfUpdateHost } from "./loam_agent.ts";
import { ActivationRolledBack } from "./adapter.ts";
import { DeploymentDirectiveSchema } from "../protocol/directive.ts";
import { createLogger } from "../system/logger.ts";
import { binLayoutFor, linkedVersion, readTrial, writeTrial } from "../system/update_trial.ts";
import { writeFakeLoamFile } from "../../tests/fixtures/fake_loam_file.ts";

const quiet = createLogger({ level: "error", format: "json", write: () => {} });

function directive(version: string, extra: Record<string, unknown> = {}) {
  return DeploymentDirectiveSchema.parse({
    directive_id: `up-${version}`,
    issued_at: "2026-12-01T10:00:00Z",
    issuer_node_id: "c2",
    scope: { type: "broadcast" },
    artifact: {
      blob_hash: `sha256:${"a".repeat(64)}`,
      size_bytes: 1,
      artifact_type: { type: "loam_agent", version, ...extra },
    },
    options: { timeout_seconds: 30 },
  });
}

/** An agent of `version` on `dir`, running the fake file `self`; `restarts` collects hand-overs. */
function agentOn(dir: string, version: string, self: string | undefined, peers = 0) {
  const restarts: string[] = [];
  const host: SelfUpdateHost = {
    dataDir: dir,
    self,
    version,
    arch: "x86_64",
    ready: () => Promise.resolve(),
    peerCount: () => peers,
    restart: (next) => restarts.push(next),
    logger: quiet,
  };
  return { adapter: new LoamAgentAdapter(host), restarts };
}

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a loam file for another arch, of another version, or older is refused before any swap", async () => {
  await withDir(async (dir) => {
    const self = join(dir, "loam-x86_64-linux");
    await writeFakeLoamFile(self, { version: "2.0.0" });
    const { adapter, restarts } = agentOn(dir, "2.0.0", self);
    const file = join(dir, "blob");
    const signal = new AbortController().signal;
    await writeFakeLoamFile(file, { version: "3.0.0", target: "aarch64-unknown-linux-gnu" });
    await assert.rejects(
      adapter.activate(directive("3.0.0"), file, signal),
      /loam 3\.0\.0 refused: the file is for aarch64, this node is x86_64/,
    );
    await writeFakeLoamFile(file, { version: "3.0.0" });
    await assert.rejects(
      adapter.activate(directive("3.1.0"), file, signal),
      /loam 3\.1\.0 refused: the file is loam 3\.0\.0, not 3\.1\.0/,
    );
    await writeFakeLoamFile(file, { version: "1.9.0" });
    await assert.rejects(
      adapter.activate(directive("1.9.0"), file, signal),
      /older than the running 2\.0\.0 \(set allow_downgrade to go back\)/,
    );
    await Deno.writeTextFile(file, "not a loam file");
    await assert.rejects(
      adapter.activate(directive("3.0.0"), file, signal),
      /not a self-extracting/,
    );
    const fromSource = agentOn(dir, "2.0.0", undefined).adapter;
    await assert.rejects(
      fromSource.activate(directive("3.0.0"), file, signal),
      /runs from source .* cannot replace itself/,
    );
    assert.deepEqual(restarts, []);
    assert.equal(await linkedVersion(join(dir, "bin", "current")), undefined, "nothing swapped");
  });
});

Deno.test("hand-over: the file goes into bin/, the running one beside it, a trial, links flipped, a restart", async () => {
  await withDir(async (dir) => {
    const self = join(dir, "loam-x86_64-linux");
    await writeFakeLoamFile(self, { version: "2.0.0" });
    const file = join(dir, "blob");
    await writeFakeLoamFile(file, { version: "1.9.0" });
    const { adapter, restarts } = agentOn(dir, "2.0.0", self, 2);
    const stop = new AbortController();
    const activation = adapter.activate(
      directive("1.9.0", { allow_downgrade: true }),
      file,
      stop.signal,
    );
    const layout = binLayoutFor(dir, self);
    while (restarts.length === 0) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(restarts, [join(layout.binDir, "current", "loam")]);
    assert.equal(await linkedVersion(layout.current), "1.9.0");
    assert.equal(await linkedVersion(layout.previous), "2.0.0");
    assert.deepEqual(
      await Deno.readFile(join(layout.binDir, "2.0.0", "loam")),
      await Deno.readFile(self),
    );
    assert.equal((await Deno.stat(join(layout.binDir, "1.9.0", "loam"))).mode! & 0o777, 0o755);
    const trial = await readTrial(layout);
    assert.equal(trial?.state, "trying");
    assert.equal(trial?.from, "2.0.0");
    assert.equal(trial?.to, "1.9.0");
    assert.equal(trial?.peers, true);
    assert.equal(trial?.starts, 0);
    stop.abort(new Error("loam is stopping"));
    await assert.rejects(activation, /loam is stopping/); // the record stays activating
  });
});

Deno.test("the new version confirms its trial and prunes; the old one reports a rollback; no peers rolls back", async () => {
  await withDir(async (dir) => {
    const layout = binLayoutFor(dir, undefined);
    for (const v of ["1.0.0", "2.0.0", "3.0.0"]) {
      await Deno.mkdir(join(layout.binDir, v), { recursive: true });
      await writeFakeLoamFile(join(layout.binDir, v, "loam"), { version: v });
    }
    await Deno.symlink("2.0.0", layout.previous);
    await Deno.symlink("3.0.0", layout.current);
    const trial = {
      directive_id: "up-3.0.0",
      from: "2.0.0",
      to: "3.0.0",
      deadline: Date.now() / 1000 + 30,
      starts: 1,
      peers: false,
      state: "trying" as const,
    };
    await writeTrial(layout, trial);
    const self = join(layout.binDir, "3.0.0", "loam");
    const signal = new AbortController().signal;
    const fresh = agentOn(dir, "3.0.0", self).adapter;
    assert.deepEqual(await fresh.activate(directive("3.0.0"), "", signal), {
      instance_id: "loam-agent-3.0.0",
    });
    assert.equal(await readTrial(layout), undefined, "confirmed: the marker is gone");
    assert.deepEqual(fresh.list().map((i) => [i.instance_id, i.state]), [
      ["loam-agent-3.0.0", "running"],
    ]);
    await assert.rejects(Deno.stat(join(layout.binDir, "1.0.0")), Deno.errors.NotFound);

    // a trial that needs peers and finds none by its deadline rolls itself back
    await writeTrial(layout, { ...trial, peers: true, deadline: Date.now() / 1000 + 0.3 });
    const lonely = agentOn(dir, "3.0.0", self);
    const stop = new AbortController();
    const activation = lonely.adapter.activate(directive("3.0.0"), "", stop.signal);
    while (lonely.restarts.length === 0) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await linkedVersion(layout.current), "2.0.0");
    const after = await readTrial(layout);
    assert.equal(after?.state, "rolled_back");
    assert.match(after?.reason ?? "", /^no peers within 30 s/);
    stop.abort(new Error("stopping"));
    await assert.rejects(activation, /stopping/);

    // the old version, started again, reports it
    const old = agentOn(dir, "2.0.0", join(layout.binDir, "2.0.0", "loam")).adapter;
    const err = await old.activate(directive("3.0.0"), "", signal).catch((e) => e);
    assert.ok(err instanceof ActivationRolledBack, String(err));
    assert.match(
      err.message,
      /loam 3\.0\.0 was rolled back: no peers within 30 s.*running 2\.0\.0 again/,
    );
    assert.equal(await readTrial(layout), undefined);
  });
});
