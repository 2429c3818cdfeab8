/**
 * What `deno task chaos` checks after every restart: each record on disk is readable and the
 * API lists it; what its state says matches what really runs (a native program's process, a
 * config package's files, an ONNX model's instance, a container), nothing runs or lies around
 * that no active record owns (processes working in an instance dir, this agent's containers,
 * staging directories), and every blob in the
 * store re-hashes to its name. Returns the violations, empty when consistent.
 * @module
 */
import { type AgentProcess, runLoam } from "../tests/e2e/harness.ts";
import { peerIdOf } from "../tests/e2e/mesh_helpers.ts";

interface RecordView {
  directive_id: string;
  state: string;
  directive: { artifact: { artifact_type: { type: string; target_path?: string } } };
}

async function api<T>(agent: AgentProcess, path: string): Promise<T> {
  const res = await agent.request(path, { token: agent.adminToken() });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return await res.json() as T;
}

/** A running container as the checks see it. */
export interface RunningContainer {
  name: string;
  labels: Record<string, string>;
}

/**
 * The violations of the agent at `dataDir` (running as `agent`); empty when consistent.
 * `containers` lists the running containers of the agent's store, where podman is in play.
 */
export async function violations(
  agent: AgentProcess,
  dataDir: string,
  containers?: () => Promise<RunningContainer[]>,
): Promise<string[]> {
  const found: string[] = [];
  const onDisk: string[] = [];
  for await (const entry of Deno.readDir(`${dataDir}/deployments`)) {
    if (!entry.name.endsWith(".json")) continue;
    try {
      JSON.parse(await Deno.readTextFile(`${dataDir}/deployments/${entry.name}`));
      onDisk.push(entry.name.slice(0, -5));
    } catch (err) {
      found.push(`record ${entry.name} unreadable: ${(err as Error).message}`);
    }
  }
  const { deployments } = await api<{ deployments: RecordView[] }>(agent, "/v1/deployments");
  if (deployments.length !== onDisk.length) {
    found.push(`${onDisk.length} records on disk, the API lists ${deployments.length}`);
  }
  const { instances } = await api<{ instances: { instance_id: string }[] }>(agent, "/v1/instances");
  const loaded = new Set(instances.map((i) => i.instance_id));
  // by working directory, which survives an exec: programs run in their instance dir
  const listing = await new Deno.Command("sh", {
    args: [
      "-c",
      'for p in /proc/[0-9]*; do d=$(readlink "$p/cwd" 2>/dev/null) && echo "${p#/proc/} $d"; done',
    ],
    stdout: "piped",
  }).output();
  const processes = new TextDecoder().decode(listing.stdout).split("\n").filter((l) =>
    l.includes(`${dataDir}/instances/`)
  );
  const running = containers ? await containers() : [];
  const peerId = peerIdOf(agent);
  const ours = running.filter((c) => c.labels["loam.agent"] === peerId);
  const activeIds = new Set(
    deployments.filter((d) => d.state === "active").map((d) => d.directive_id),
  );
  for (const c of ours) {
    if (!activeIds.has(c.labels["loam.deployment"] ?? "")) {
      found.push(`orphan container: ${c.name}`);
    }
  }
  const owned = new Set<string>();
  for (const record of deployments) {
    const id = record.directive_id;
    const active = record.state === "active";
    const type = record.directive.artifact.artifact_type;
    let runs: boolean;
    if (type.type === "container") {
      runs = ours.some((c) => c.labels["loam.deployment"] === id);
    } else if (type.type === "native_binary") {
      const dir = `${dataDir}/instances/bin-${id}`;
      runs = processes.some((l) => l.endsWith(` ${dir}`));
      if (active) owned.add(dir);
    } else if (type.type === "config_package") {
      runs = await Deno.readTextFile(`${type.target_path}/app.conf`).then(
        (text) => text === "v=1\n",
        () => false,
      );
    } else {
      runs = loaded.has(`onnx-${id}`);
    }
    if (runs !== active) {
      found.push(`${id} is ${record.state} but ${runs ? "runs" : "does not run"}`);
    }
  }
  for (const line of processes) {
    if (![...owned].some((dir) => line.endsWith(` ${dir}`))) {
      found.push(`orphan process: ${line.trim().slice(0, 160)}`);
    }
  }
  const verified = await runLoam(["blobs", "verify", "--data-dir", dataDir]);
  if (verified.code !== 0) {
    found.push(`loam blobs verify: ${verified.stdout.trim().split("\n").at(-1)}`);
  }
  return found;
}

/** Staging directories a config package left beside its target (none after any outcome). */
export async function stagingLeft(targets: string): Promise<string[]> {
  const left: string[] = [];
  for await (const entry of Deno.readDir(targets)) {
    if (entry.name.includes(".loam-staging-")) left.push(`staging left: ${entry.name}`);
  }
  return left;
}
