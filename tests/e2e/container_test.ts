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

        const instance = await (await agent.request("/v1/instances/ctr-web-1", {
          token: agent.adminToken(),
        })).json();
        assert.equal(instance.adapter, "container");
        assert.equal(instance.provider, "podman");
        assert.equal(instance.state, "running");
        assert.deepEqual(instance.ports, [`127.0.0.1:${port}:8080/tcp`]);

        // labelled as loam's, with --init, no new privileges, the directive's env only
        const inspect = JSON.parse(
          (await podman(pm, ["container", "inspect", "loam-ctr-web-1"])).stdout,
        )[0];
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
          "loam-ctr-web-1",
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
  name:
    "on restart the agent adopts its running container and removes loam containers it no longer owns",
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
      const first = await startAgent(dataDir, args, { env });
      try {
        const record = await deploy(first, "web-2", http.url("/web.tar"), bytes, port);
        assert.equal(record.state, "active", record.error_message);
      } finally {
        await first.stop();
      }
      // still serving while no agent runs; and a stray container claiming to be loam's appears
      assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 200);
      await podman(pm, [
        "run",
        "-d",
        "--name",
        "loam-ctr-stray",
        "--label",
        "loam.instance=ctr-stray",
        image,
      ]);
      const pid = JSON.parse(
        (await podman(pm, ["container", "inspect", "loam-ctr-web-2"])).stdout,
      )[0].State.Pid;

      const second = await startAgent(dataDir, args, { env });
      try {
        const instance = await (await second.request("/v1/instances/ctr-web-2", {
          token: second.adminToken(),
        })).json();
        assert.equal(instance.state, "running");
        assert.equal(instance.pid, pid, "adopted, not restarted");
        const names = JSON.parse((await podman(pm, ["ps", "-a", "--format", "json"])).stdout)
          .map((c: { Names: string[] }) => c.Names[0]);
        assert.deepEqual(names, ["loam-ctr-web-2"], "the stray is removed");
        assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 200);
      } finally {
        await second.stop();
      }
    } finally {
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
      await docker(["rm", "-f", "loam-ctr-web-d"]);
      dockerd.kill("SIGTERM");
      await dockerd.status;
      // dockerd leaves its bridge behind
      await new Deno.Command("ip", { args: ["link", "delete", "docker0"], stderr: "null" })
        .output();
    }
  },
});
