/**
 * Recovery benchmark: how long an agent killed with -9 takes to be ready again with N native
 * programs active (it stops what the dead agent left running and starts them anew), against
 * the same agent with nothing deployed; how close a timeout and a DELETE of a running download
 * come to what was asked. Each against a baseline from the same run.
 * @module
 */
import { type AgentProcess, startAgent } from "../tests/e2e/harness.ts";
import { postArtifact, settledDeployment } from "../tests/e2e/deploy_helpers.ts";
import { randomBytes, startBlobServer } from "../tests/fixtures/blob_server.ts";
import { type BenchRow, median, shell, timed } from "./bench_util.ts";
import { sleep } from "../src/system/sleep.ts";

const PROGRAM = new TextEncoder().encode("#!/bin/sh\nexec sleep 600\n");
const NATIVE = { type: "native_binary", arch: Deno.build.arch };
const ROUNDS = 3;

/** Seconds from spawning `loam run` on `dir` to its "agent ready" line. */
async function startSeconds(dir: string): Promise<[AgentProcess, number]> {
  return await timed(() => startAgent(dir));
}

/** The pid of each native instance the agent shows. */
async function pids(agent: AgentProcess): Promise<Map<string, number>> {
  const res = await agent.request("/v1/instances", { token: agent.adminToken() });
  const { instances } = await res.json();
  return new Map(
    instances.map((i: { instance_id: string; pid: number }) => [i.instance_id, i.pid]),
  );
}

/**
 * Start-to-ready after kill -9, medians of {@link ROUNDS}: with `count` programs, and with none;
 * and how many of the programs are still the processes from before all those restarts (adopted).
 */
async function restartRows(dir: string, count: number, url: string): Promise<BenchRow[]> {
  const empty = `${dir}/empty`;
  const busy = `${dir}/busy`;
  await Deno.mkdir(empty, { recursive: true });
  await Deno.mkdir(busy, { recursive: true });
  let agent = await startAgent(busy, ["--set", `deploy.max_concurrent=${count}`]);
  for (let i = 0; i < count; i++) await postArtifact(agent, `p${i}`, PROGRAM, url, NATIVE);
  for (let i = 0; i < count; i++) await settledDeployment(agent, `p${i}`);
  const before = await pids(agent);
  await agent.stop("SIGKILL");
  const withPrograms: number[] = [];
  const without: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    let seconds: number;
    [agent, seconds] = await startSeconds(busy);
    withPrograms.push(seconds);
    await agent.stop("SIGKILL");
    [agent, seconds] = await startSeconds(empty);
    without.push(seconds);
    await agent.stop("SIGKILL");
  }
  [agent] = await startSeconds(busy);
  const after = await pids(agent);
  await agent.stop(); // a graceful stop ends the programs
  const same = [...before].filter(([id, pid]) => after.get(id) === pid).length;
  return [[
    `start to ready after kill -9, ${count} native programs active (s)`,
    median(withPrograms),
    median(without),
    "does not grow with the programs",
    "ratio",
  ], [
    `programs still the same process after ${ROUNDS + 1} kill -9 restarts (adopted)`,
    same,
    count,
    "all",
    "ratio",
  ]];
}

/** A 2 s timeout on a slow download, and a DELETE of one: how long until the record says so. */
async function stopRows(dir: string): Promise<BenchRow[]> {
  const slow = randomBytes(8 * 1024 * 1024);
  await using server = startBlobServer({ "/slow": { body: slow, bytesPerSecond: 256 * 1024 } });
  const agent = await startAgent(`${dir}/stops`);
  try {
    const started = performance.now();
    await postArtifact(agent, "timeout", slow, server.url("/slow"), NATIVE, {
      options: { timeout_seconds: 2 },
    });
    await settledDeployment(agent, "timeout", ["failed"]);
    const timedOut = (performance.now() - started) / 1000;

    await postArtifact(agent, "cancel", slow, server.url("/slow"), NATIVE);
    await settledDeployment(agent, "cancel", ["downloading"]);
    await sleep(500);
    const [, getSeconds] = await timed(async () =>
      await (await agent.request("/v1/deployments/cancel", { token: agent.adminToken() })).json()
    );
    const [, deleteSeconds] = await timed(async () =>
      await (await agent.request("/v1/deployments/cancel", {
        method: "DELETE",
        token: agent.adminToken(),
      })).json()
    );
    return [
      [
        "timeout_seconds = 2 on an 8 MiB download at 256 KiB/s: failed after (s)",
        timedOut,
        2,
        "2 s",
        "ratio",
      ],
      [
        "DELETE of a running download, answered rolled_back (ms)",
        deleteSeconds * 1000,
        getSeconds * 1000,
        "",
        "diff",
      ],
    ];
  } finally {
    await agent.stop();
  }
}

/** The recovery rows; `LOAM_BENCH_PROGRAMS` programs (default 10). */
export async function benchRestart(dir: string): Promise<BenchRow[]> {
  const count = Number(Deno.env.get("LOAM_BENCH_PROGRAMS") ?? "10");
  await using server = startBlobServer({ "/program": { body: PROGRAM } });
  try {
    return [
      ...await restartRows(dir, count, server.url("/program")),
      ...await stopRows(dir),
    ];
  } finally {
    // a failed round may leave programs behind; [i] keeps the pattern from matching this shell
    await shell(`pkill -f '${dir}/busy/[i]nstances/' || true`);
  }
}
