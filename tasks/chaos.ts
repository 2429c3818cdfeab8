/**
 * `deno task chaos [--deploys N] [--seed S]`: N rounds of faults against one real agent and its
 * data dir, each followed by a restart and a consistency check (tasks/chaos_checks.ts):
 * - kill: `kill -9` while a deployment downloads, activates or has just gone active (a native
 *   program, a config package, an ONNX model, a podman container where podman runs); a download
 *   cut mid-way must resume with Range;
 * - disk: the data dir's filesystem (a small tmpfs, as root) fills up while a download runs,
 *   then the agent is killed and must start again on the full disk;
 * - restarts: `kill -9` three times during start-up, then a normal start.
 * Prints one line per round and, last, `N/N consistent`; exits 1 unless all are.
 * @module
 */
import { parseArgs } from "node:util";
import fc from "fast-check";
import { runLoam, spawnAgent, startAgent, tempDir } from "../tests/e2e/harness.ts";
import { smallDisk } from "../tests/fixtures/tmpfs.ts";
import {
  buildWebImageArchive,
  podman,
  podmanAvailable,
  podmanEnv,
} from "../tests/fixtures/container_image.ts";
import {
  type Artifact,
  chaosArtifacts,
  chaosDirective,
  type ChaosKind,
} from "./chaos_artifacts.ts";
import { stagingLeft, violations } from "./chaos_checks.ts";
import { draw } from "./fuzz_inputs.ts";
import { type DeploymentState, TERMINAL_STATES } from "../src/protocol/status.ts";
import { sha256Hex } from "../tests/fixtures/blob_server.ts";
import { sleep } from "../src/system/sleep.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { deploys: { type: "string" }, seed: { type: "string" } },
});
const rounds = Number(values.deploys ?? "50");
const seed = Number(values.seed ?? String(Date.now() % 2 ** 31));
if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(seed)) {
  console.error("usage: deno task chaos [--deploys N] [--seed S]  (whole numbers)");
  Deno.exit(2);
}

type Point = "downloading" | "activating" | "active";
type Round =
  | { fault: "kill"; kind: ChaosKind; point: Point; delayMs: number }
  | { fault: "disk"; kind: "native_binary" | "config_package" }
  | { fault: "restarts"; delaysMs: number[] };

const ORDER = ["pending", "downloading", "ready", "activating", "active"];
/** Chaos deployments kept at once; older ones are deleted (their removal is checked too). */
const KEEP = 3;

let disk: { path: string } & AsyncDisposable;
let diskProblem: string | undefined;
try {
  disk = await smallDisk("48m");
} catch (err) {
  diskProblem = (err as Error).message;
  disk = await tempDir();
}
await using _disk = disk;
await using work = await tempDir();
// containers: a store of this run's own (off the small disk; podman wants its runroot path
// under 50 characters) and a busybox image built here
const podmanProblem = await podmanAvailable();
const pm = podmanProblem ? undefined : await podmanEnv(`${work.path}/p`);
const image = pm
  ? await Deno.readFile((await buildWebImageArchive(`${work.path}/i`)).archive)
  : undefined;
await using artifacts = await chaosArtifacts(image);
const dataDir = `${disk.path}/data`;
const targets = `${work.path}/targets`;
await Deno.mkdir(targets);
const agentArgs = [
  ...["--set", "blobs.disk_reserve_mb=0", "--set", "fetch.retries=2"],
  ...(pm ? ["--set", `containers.podman_args=${pm.flags.join(",")}`] : []),
];
const agentEnv = { env: pm?.env ?? {} };
if (diskProblem) console.log(`disk rounds skipped: ${diskProblem}`);
if (podmanProblem) console.log(`container deployments skipped: ${podmanProblem}`);
const kinds: ChaosKind[] = [
  "native_binary",
  "config_package",
  "onnx_model",
  ...(pm ? ["container" as const] : []),
];
/** The running containers of the run's store, for the checks. */
const runningContainers = pm
  ? async () =>
    (JSON.parse((await podman(pm, ["ps", "--format", "json"])).stdout || "[]") as {
      Names: string[];
      Labels: Record<string, string> | null;
    }[]).map((c) => ({ name: c.Names[0]!, labels: c.Labels ?? {} }))
  : undefined;

const kill = fc.record({
  fault: fc.constant("kill" as const),
  kind: fc.constantFrom<ChaosKind>(...kinds),
  point: fc.constantFrom<Point>("downloading", "activating", "active"),
  delayMs: fc.integer({ min: 0, max: 150 }),
});
const full = fc.record({
  fault: fc.constant("disk" as const),
  kind: fc.constantFrom("native_binary" as const, "config_package" as const),
});
const restarts = fc.record({
  fault: fc.constant("restarts" as const),
  delaysMs: fc.array(fc.integer({ min: 0, max: 400 }), { minLength: 3, maxLength: 3 }),
});
const plan: Round[] = draw(
  fc.oneof(
    { weight: 6, arbitrary: kill as fc.Arbitrary<Round> },
    ...(diskProblem ? [] : [{ weight: 1, arbitrary: full as fc.Arbitrary<Round> }]),
    { weight: 1, arbitrary: restarts as fc.Arbitrary<Round> },
  ),
  rounds,
  seed,
);

let agent = await startAgent(dataDir, agentArgs, agentEnv);
const stateOf = async (id: string) => {
  const res = await agent.request(`/v1/deployments/${id}`, { token: agent.adminToken() });
  return res.ok ? (await res.json()).state as string : undefined;
};

/** Log lines of the agent processes before the current one, to explain an inconsistency. */
const history: string[] = [];

async function restart(): Promise<void> {
  history.push(...agent.lines);
  agent = await startAgent(dataDir, agentArgs, agentEnv);
}

/** The log lines about the deployments a problem names, across the agent's lives. */
function explain(problems: string[]): string[] {
  const ids = new Set(problems.flatMap((p) => p.match(/chaos-\d+/g) ?? []));
  return [...history, ...agent.lines]
    .filter((l) => [...ids].some((id) => l.includes(`"${id}"`)) && !l.includes('"api request"'))
    .slice(-20);
}

/** Waits until no deployment is mid-way; returns the ids still moving after 60 s. */
async function settle(): Promise<string[]> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const res = await agent.request("/v1/deployments", { token: agent.adminToken() });
    const { deployments } = await res.json() as {
      deployments: { directive_id: string; state: string }[];
    };
    const moving = deployments.filter((d) => !TERMINAL_STATES.includes(d.state as DeploymentState));
    if (moving.length === 0 || Date.now() > deadline) {
      return moving.map((d) => `${d.directive_id} still ${d.state}`);
    }
    await sleep(100);
  }
}

async function deploy(id: string, artifact: Artifact): Promise<void> {
  const res = await agent.request("/v1/deployments", {
    method: "POST",
    token: agent.adminToken(),
    body: JSON.stringify(
      chaosDirective(id, artifact, artifacts.server.url(artifact.path), targets),
    ),
  });
  if (res.status !== 202) throw new Error(`${id} refused: ${res.status} ${await res.text()}`);
  await res.body?.cancel();
}

/** Waits until `id` reached `point` (or went past it, or ended); returns the state seen. */
async function reach(id: string, point: Point): Promise<string | undefined> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const state = await stateOf(id);
    if (state && (ORDER.indexOf(state) >= ORDER.indexOf(point) || !ORDER.includes(state))) {
      return state;
    }
    if (Date.now() > deadline) return state;
    await sleep(15);
  }
}

async function fillDisk(): Promise<string> {
  const filler = `${disk.path}/filler`;
  using file = await Deno.open(filler, { write: true, create: true });
  const chunk = new Uint8Array(1024 * 1024);
  try {
    for (;;) await file.write(chunk);
  } catch {
    // ENOSPC: full
  }
  return filler;
}

let consistent = 0;
for (const [i, round] of plan.entries()) {
  const id = `chaos-${i}`;
  const problems: string[] = [];
  let what = "";
  const restartedAt = Date.now();
  if (round.fault === "kill") {
    // a tiny ONNX model downloads at once: its "downloading" kill lands as early as it can
    const slow = round.point === "downloading" && round.kind !== "onnx_model";
    const artifact = slow ? await artifacts.fresh(round.kind, i) : artifacts.of(round.kind);
    await deploy(id, artifact);
    const seen = await reach(id, round.point);
    const partialPath = `${dataDir}/blobs/partial/${sha256Hex(artifact.bytes)}`;
    const partialSize = () => Deno.stat(partialPath).then((s) => s.size, () => 0);
    if (slow) {
      // "downloading" starts with asking peers: wait for the first bytes on disk
      const deadline = Date.now() + 10_000;
      while (await partialSize() === 0 && Date.now() < deadline) await sleep(20);
    }
    await sleep(round.delayMs);
    await agent.stop("SIGKILL");
    // bytes on disk when it died: the restart must ask for the rest only
    const partial = await partialSize() > 0;
    const killedAt = performance.now(); // the blob server stamps requests with performance.now()
    await restart();
    what = `kill -9 ${round.kind} at ${seen}+${round.delayMs}ms`;
    problems.push(...await settle());
    if (partial && slow) {
      const resumed = artifacts.server.requests.some((r) =>
        r.path === artifact.path && r.startedAt >= killedAt &&
        /^bytes=[1-9]\d*-/.test(r.range ?? "")
      );
      if (!resumed) {
        const asked = artifacts.server.requests.filter((r) => r.path === artifact.path)
          .map((r) => `${r.range ?? "no range"} at ${r.startedAt - killedAt} ms`);
        problems.push(`${id}: the cut download did not resume with Range (${asked.join(", ")})`);
      } else what += ", resumed with Range";
    }
    const final = await stateOf(id);
    if (final !== "active") problems.push(`${id} ended ${final}, not active`);
  } else if (round.fault === "disk") {
    await deploy(id, await artifacts.fresh(round.kind, i));
    await reach(id, "downloading");
    const filler = await fillDisk();
    await sleep(300);
    await agent.stop("SIGKILL");
    // the agent must come back on a full disk
    await restart().catch((err) =>
      problems.push(`no start on a full disk: ${(err as Error).message}`)
    );
    problems.push(...await settle());
    what = `disk filled while ${round.kind} downloaded; restarted full; ended ${await stateOf(id)}`;
    await Deno.remove(filler);
  } else {
    await agent.stop();
    for (const delay of round.delaysMs) {
      const starting = spawnAgent(dataDir, agentArgs, agentEnv);
      await sleep(delay);
      await starting.stop("SIGKILL");
    }
    await restart();
    what = `kill -9 during start-up at ${round.delaysMs.join(", ")} ms`;
    problems.push(...await settle());
  }
  const check = async () => [
    ...await violations(agent, dataDir, runningContainers),
    ...await stagingLeft(targets),
  ];
  let found = await check();
  if (found.length > 0) {
    // a stopped program's last child (its `sleep 0.2`) outlives it briefly: look again
    await sleep(1000);
    found = await check();
  }
  problems.push(...found);
  if (problems.length === 0) consistent++;
  console.log(
    `${i + 1}/${rounds} ${what} (${Date.now() - restartedAt} ms): ${
      problems.length === 0 ? "consistent" : problems.join("; ")
    }`,
  );
  for (const line of problems.length ? explain(problems) : []) console.log(`    ${line}`);
  // bounded state: delete an older round's deployment (deactivate, then remove the record)
  const old = `chaos-${i - KEEP}`;
  for (let n = 0; n < 2; n++) {
    await agent.request(`/v1/deployments/${old}`, { method: "DELETE", token: agent.adminToken() })
      .then((r) => r.body?.cancel());
  }
  // and its blob, as an operator would: every round may download a new one into a small disk
  const gc = await runLoam(["blobs", "gc", "--data-dir", dataDir]);
  if (gc.code !== 0) console.log(`    loam blobs gc: ${gc.stderr.trim()}`);
}
// leave nothing running: the agent removes what its deployments started, podman the rest
for (let n = 0; n < 2; n++) {
  for (let i = Math.max(0, rounds - KEEP); i < rounds; i++) {
    await agent.request(`/v1/deployments/chaos-${i}`, {
      method: "DELETE",
      token: agent.adminToken(),
    })
      .then((r) => r.body?.cancel());
  }
}
await agent.stop();
if (pm) await podman(pm, ["rm", "--force", "--all"]);
// a workload's last child (a `sleep 0.2`) may still hold the small disk for a moment
await sleep(500);
console.log(`seed ${seed}`);
console.log(`${consistent}/${rounds} consistent`);
// not Deno.exit: the disk, the server and the temp dirs are disposed of on the way out
Deno.exitCode = consistent === rounds ? 0 : 1;
