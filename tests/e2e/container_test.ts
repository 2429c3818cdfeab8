import assert from "node:assert/strict";
import { join } from "node:path";
import { type AgentProcess, startAgent, tempDir } from "./harness.ts";
import { eventually } from "./mesh_helpers.ts";
import { postArtifact, settledDeployment } from "./deploy_helpers.ts";
import { startBlobServer } from "../fixtures/blob_server.ts";
import {
  buildWebImageArchive,
  podman,
  podmanAvailable,
  type PodmanEnv,
  podmanEnv,
  podmanOk,
} from "../fixtures/container_image.ts";

const skip = await podmanAvailable();
if (skip) console.warn(`SKIP container tests: ${skip}`);

/** A free TCP port on 127.0.0.1. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** The agent's podman settings for the test's own store. */
function agentArgs(pm: PodmanEnv): { args: string[]; env: Record<string, string> } {
  return {
    args: ["--set", `containers.podman_args=${pm.flags.join(",")}`],
    env: { ...pm.env, LOAM_INFERENCE_THREADS: "1" },
  };
}

/** The agent's peer id, from its start-up log. */
function peerIdOf(agent: AgentProcess): string {
  const line = agent.logs.find((l) => l.msg === "identity created" || l.msg === "identity loaded");
  return String(line?.peer_id);
}

/** The names and agent labels of the containers in the test's store, running or not. */
async function containers(pm: PodmanEnv): Promise<{ name: string; agent?: string }[]> {
  const rows = JSON.parse((await podman(pm, ["ps", "-a", "--format", "json"])).stdout) as {
    Names: string[];
    Labels: Record<string, string> | null;
  }[];
  return rows.map((c) => ({ name: c.Names[0]!, agent: c.Labels?.["loam.agent"] }))
    .sort((a, b) => a.name < b.name ? -1 : 1);
}

/** The instance record of `id` on `agent`. */
async function instanceOf(agent: AgentProcess, id: string) {
  return await (await agent.request(`/v1/instances/${id}`, { token: agent.adminToken() })).json();
}

async function deploy(
  agent: AgentProcess,
  id: string,
  url: string,
  archive: Uint8Array,
  port: number,
  runtime = "podman",
) {
  const res = await postArtifact(agent, id, archive, url, {
    type: "container",
    runtime,
    ports: [{ container_port: 8080, host_port: port }],
    env: { GREETING: "hi" },
  }, { config: { health: { http: { port, path: "/" }, timeout_seconds: 20 } } });
  assert.equal(res.status, 202, await res.text());
  return await settledDeployment(agent, id, undefined, 60_000);
}

Deno.test({
  name: "a container image deploys with podman: served on 127.0.0.1, confined, removed on DELETE",
  ignore: skip !== undefined,
  async fn() {
    await using dir = await tempDir();
    const pm = await podmanEnv(join(dir.path, "podman"));
    try {
      const { archive } = await buildWebImageArchive(dir.path, { page: "<h1>from loam</h1>\n" });
      const bytes = await Deno.readFile(archive);
      await using http = startBlobServer({ "/web.tar": { body: bytes } });
      const port = freePort();
      const { args, env } = agentArgs(pm);
      const agent = await startAgent(join(dir.path, "data"), args, { env });
      try {
        const record = await deploy(agent, "web-1", http.url("/web.tar"), bytes, port);
        assert.equal(record.state, "active", record.error_message);
        assert.equal(record.instance_id, "ctr-web-1");

        const page = await fetch(`http://127.0.0.1:${port}/`);
        assert.equal(await page.text(), "<h1>from loam</h1>\n");

        const instance = await instanceOf(agent, "ctr-web-1");
        assert.equal(instance.adapter, "container");
        assert.equal(instance.provider, "podman");
        assert.equal(instance.state, "running");
        assert.deepEqual(instance.ports, [`127.0.0.1:${port}:8080/tcp`]);
        assert.match(instance.container, /^loam-ctr-web-1-[0-9a-f]{8}$/);
        // CPU and memory from podman's stats: the container's cgroup, every process in it
        assert.equal(instance.usage_source, "podman");
        assert.ok(instance.memory_bytes > 0 && instance.cpu_seconds >= 0, JSON.stringify(instance));
        const metrics = await (await agent.request("/metrics", { token: agent.adminToken() }))
          .text();
        assert.match(
          metrics,
          /^loam_instance_memory_bytes\{loam_instance="ctr-web-1",usage_source="podman"\} [1-9]/m,
        );
        assert.match(metrics, /^loam_instance_cpu_seconds_total\{loam_instance="ctr-web-1"\} \d/m);

        // labelled as this agent's, with --init, no new privileges, the directive's env only
        const inspect = JSON.parse(
          (await podman(pm, ["container", "inspect", instance.container])).stdout,
        )[0];
        assert.equal(inspect.Config.Labels["loam.agent"], peerIdOf(agent));
        assert.equal(inspect.Config.Labels["loam.instance"], "ctr-web-1");
        assert.equal(inspect.Config.Labels["loam.deployment"], "web-1");
        assert.equal(inspect.HostConfig.Init, true);
        assert.equal(inspect.HostConfig.Privileged, false);
        assert.ok(inspect.HostConfig.SecurityOpt.includes("no-new-privileges"));
        assert.ok(inspect.Config.Env.includes("GREETING=hi"));
        assert.notEqual(inspect.HostConfig.NetworkMode, "host");

        // the host's data dir is not in the container
        const peek = await podman(pm, [
          "exec",
          instance.container,
          "cat",
          join(dir.path, "data", "identity.key"),
        ]);
        assert.notEqual(peek.code, 0);
        assert.match(peek.stderr + peek.stdout, /No such file/);

        // its output is served like every workload's
        await (await fetch(`http://127.0.0.1:${port}/missing`)).body?.cancel();
        const logs = await (await agent.request("/v1/instances/ctr-web-1/logs?lines=20", {
          token: agent.adminToken(),
        })).json();
        assert.ok(Array.isArray(logs.lines));

        const del = await agent.request("/v1/deployments/web-1", {
          method: "DELETE",
          token: agent.adminToken(),
        });
        assert.equal(del.status, 200, await del.text());
        const gone = await podman(pm, ["ps", "-a", "--format", "json"]);
        assert.deepEqual(JSON.parse(gone.stdout), []);
        const images = await podman(pm, ["images", "--format", "json"]);
        assert.deepEqual(JSON.parse(images.stdout), [], "the unused image is removed");
        await assert.rejects(fetch(`http://127.0.0.1:${port}/`));
      } finally {
        await agent.stop();
      }
    } finally {
      await podman(pm, ["rm", "-af", "-t", "0"]);
    }
  },
});

Deno.test({
  name: "on restart the agent adopts its running container, also one an older loam named, " +
    "and removes only its own containers that it no longer owns",
  ignore: skip !== undefined,
  async fn() {
    await using dir = await tempDir();
    const pm = await podmanEnv(join(dir.path, "podman"));
    try {
      const { archive, image } = await buildWebImageArchive(dir.path);
      const bytes = await Deno.readFile(archive);
      await using http = startBlobServer({ "/web.tar": { body: bytes } });
      const port = freePort();
      const { args, env } = agentArgs(pm);
      const dataDir = join(dir.path, "data");
      const pidOf = async (name: string) =>
        JSON.parse((await podman(pm, ["container", "inspect", name])).stdout)[0].State.Pid;
      /** Runs the image as loam runs it (with --init), named and labelled as given. */
      const runAsLoam = (name: string, labels: string[], extra: string[] = []) =>
        podmanOk(pm, [
          "run",
          "-d",
          "--init",
          "--name",
          name,
          ...labels.flatMap((l) => ["--label", l]),
          ...extra,
          image,
        ]);
      const first = await startAgent(dataDir, args, { env });
      let peerId: string, name: string;
      try {
        const record = await deploy(first, "web-2", http.url("/web.tar"), bytes, port);
        assert.equal(record.state, "active", record.error_message);
        peerId = peerIdOf(first);
        name = (await instanceOf(first, "ctr-web-2")).container;
      } finally {
        await first.stop();
      }
      // still serving while no agent runs; and strays appear: one labelled as this agent's, and
      // one of a loam from before agent labels (an instance label only)
      assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 200);
      await runAsLoam("loam-ctr-stray-00000000", [
        `loam.agent=${peerId}`,
        "loam.instance=ctr-stray",
      ]);
      await runAsLoam("loam-ctr-old", ["loam.instance=ctr-old"]);
      const pid = await pidOf(name);

      const second = await startAgent(dataDir, args, { env });
      try {
        const instance = await instanceOf(second, "ctr-web-2");
        assert.equal(instance.state, "running");
        assert.equal(instance.pid, pid, "adopted, not restarted");
        assert.deepEqual(
          (await containers(pm)).map((c) => c.name),
          ["loam-ctr-old", name].sort(),
          "its own stray is removed, the older loam's is left alone",
        );
        assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 200);
      } finally {
        await second.stop();
      }

      // an older loam's container of the active instance (its old name) is adopted in place
      await podman(pm, ["rm", "-f", "-t", "0", name]);
      await runAsLoam("loam-ctr-web-2", ["loam.instance=ctr-web-2"], [
        "-p",
        `127.0.0.1:${port}:8080`,
      ]);
      const legacyPid = await pidOf("loam-ctr-web-2");
      const third = await startAgent(dataDir, args, { env });
      try {
        const instance = await instanceOf(third, "ctr-web-2");
        assert.equal(instance.container, "loam-ctr-web-2");
        assert.equal(instance.pid, legacyPid, "adopted, not restarted");
        assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 200);
        const del = await third.request("/v1/deployments/web-2", {
          method: "DELETE",
          token: third.adminToken(),
        });
        assert.equal(del.status, 200, await del.text());
        assert.deepEqual((await containers(pm)).map((c) => c.name), ["loam-ctr-old"]);
      } finally {
        await third.stop();
      }
    } finally {
      await podman(pm, ["rm", "-af", "-t", "0"]);
    }
  },
});

Deno.test({
  name: "two agents on one host run the same directive side by side, and each reconciles " +
    "and removes only its own container",
  ignore: skip !== undefined,
  async fn() {
    await using dir = await tempDir();
    const pm = await podmanEnv(join(dir.path, "podman"));
    const agents: AgentProcess[] = [];
    try {
      const { archive } = await buildWebImageArchive(dir.path);
      const bytes = await Deno.readFile(archive);
      await using http = startBlobServer({ "/web.tar": { body: bytes } });
      const { args, env } = agentArgs(pm);
      const start = async (name: string) => {
        const agent = await startAgent(join(dir.path, name), args, { env });
        agents.push(agent);
        return agent;
      };
      const a = await start("a");
      let b = await start("b");
      // the very same directive (no host port, so both can run it) on both agents
      const shared = { type: "container", runtime: "podman", ports: [], env: {} };
      for (const agent of [a, b]) {
        const res = await postArtifact(agent, "shared", bytes, http.url("/web.tar"), shared);
        assert.equal(res.status, 202, await res.text());
      }
      for (const agent of [a, b]) {
        const record = await settledDeployment(agent, "shared", undefined, 60_000);
        assert.equal(record.state, "active", record.error_message);
        assert.equal(record.instance_id, "ctr-shared");
      }
      const nameA = (await instanceOf(a, "ctr-shared")).container;
      const nameB = (await instanceOf(b, "ctr-shared")).container;
      assert.notEqual(nameA, nameB);
      const mine = { name: nameA, agent: peerIdOf(a) };
      assert.deepEqual(
        await containers(pm),
        [mine, { name: nameB, agent: peerIdOf(b) }].sort((x, y) => x.name < y.name ? -1 : 1),
      );
      const running = JSON.parse((await podman(pm, ["ps", "--format", "json"])).stdout);
      assert.equal(running.length, 2, "both run side by side");
      const pidA = (await instanceOf(a, "ctr-shared")).pid;

      const del = await b.request("/v1/deployments/shared", {
        method: "DELETE",
        token: b.adminToken(),
      });
      assert.equal(del.status, 200, await del.text());
      assert.deepEqual(await containers(pm), [mine], "B removed only its own");

      // B restarts: its reconcile finds no active deployment, and leaves A's container alone
      await b.stop();
      b = await start("b");
      assert.deepEqual(await containers(pm), [mine]);
      const instance = await instanceOf(a, "ctr-shared");
      assert.equal(instance.state, "running");
      assert.equal(instance.pid, pidA);
      assert.equal((await instanceOf(b, "ctr-shared")).error?.code, "not_found");
    } finally {
      for (const agent of agents) await agent.stop();
      await podman(pm, ["rm", "-af", "-t", "0"]);
    }
  },
});

/** Why a private dockerd cannot be started here, or undefined. */
async function dockerUnavailable(): Promise<string | undefined> {
  for (const program of ["dockerd", "docker", "ip"]) {
    if ((await Deno.permissions.query({ name: "run", command: program })).state !== "granted") {
      return `no --allow-run for ${program}`;
    }
  }
  if (Deno.uid() !== 0) return "dockerd needs root";
  const found = await new Deno.Command("dockerd", { args: ["--version"], stdout: "null" }).output()
    .then((o) => o.success, () => false);
  return found ? undefined : "dockerd not installed (apt-get install -y docker.io)";
}

const dockerSkip = skip ?? await dockerUnavailable();
if (dockerSkip) console.warn(`SKIP docker test: ${dockerSkip}`);

Deno.test({
  name: "the same image deploys with docker (a private dockerd), and is removed on DELETE",
  ignore: dockerSkip !== undefined,
  async fn() {
    await using dir = await tempDir();
    const socket = join(dir.path, "docker.sock");
    const dockerd = new Deno.Command("dockerd", {
      args: [
        "--data-root",
        join(dir.path, "docker-data"),
        "--exec-root",
        join(dir.path, "docker-exec"),
        "--pidfile",
        join(dir.path, "docker.pid"),
        "-H",
        `unix://${socket}`,
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const docker = (args: string[]) =>
      new Deno.Command("docker", {
        args: ["--host", `unix://${socket}`, ...args],
        stdout: "piped",
        stderr: "piped",
      })
        .output();
    try {
      await eventually(
        "dockerd answers",
        async () => (await docker(["version"])).success || undefined,
      );
      const { archive } = await buildWebImageArchive(dir.path, { page: "<h1>from docker</h1>\n" });
      const bytes = await Deno.readFile(archive);
      await using http = startBlobServer({ "/web.tar": { body: bytes } });
      const port = freePort();
      const agent = await startAgent(join(dir.path, "data"), [
        "--set",
        `containers.docker_args=--host,unix://${socket}`,
      ]);
      try {
        const record = await deploy(agent, "web-d", http.url("/web.tar"), bytes, port, "docker");
        assert.equal(record.state, "active", record.error_message);
        assert.equal(
          await (await fetch(`http://127.0.0.1:${port}/`)).text(),
          "<h1>from docker</h1>\n",
        );
        const instance = await (await agent.request("/v1/instances/ctr-web-d", {
          token: agent.adminToken(),
        })).json();
        assert.equal(instance.provider, "docker");
        assert.equal(instance.state, "running");
        // docker's stats give memory only (no CPU total)
        assert.equal(instance.usage_source, "docker", JSON.stringify(instance));
        assert.ok(instance.memory_bytes > 0);
        assert.equal(instance.cpu_seconds, undefined);
        const del = await agent.request("/v1/deployments/web-d", {
          method: "DELETE",
          token: agent.adminToken(),
        });
        assert.equal(del.status, 200, await del.text());
        const left = new TextDecoder().decode((await docker(["ps", "-aq"])).stdout).trim();
        assert.equal(left, "");
      } finally {
        await agent.stop();
      }
    } finally {
      const left = new TextDecoder().decode((await docker(["ps", "-aq"])).stdout).trim();
      if (left) await docker(["rm", "-f", ...left.split("\n")]);
      dockerd.kill("SIGTERM");
      await dockerd.status;
      // dockerd leaves its bridge behind
      await new Deno.Command("ip", { args: ["link", "delete", "docker0"], stderr: "null" })
        .output();
    }
  },
});
