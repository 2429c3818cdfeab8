import { createHash } from "node:crypto";
import { z } from "zod";
import type { DeploymentDirective } from "../protocol/directive.ts";
import type {
  Instance,
  InstanceFailed,
  InstanceView,
  RuntimeAdapter,
  WorkloadUsage,
} from "./adapter.ts";
import { ContainerCli, type ContainerRuntime, type ContainerState } from "./container_cli.ts";
import type { LogLine } from "./log_ring.ts";
import type { Logger } from "../system/logger.ts";
import { sleep } from "../system/sleep.ts";

/** The agent's container settings (`[containers]`). */
export interface ContainerSettings {
  /**
   * This agent's peer id. Its containers carry it as a label and in their names: agents that
   * share a runtime's store (several on one host) take the same directive and reconcile without
   * touching each other's containers.
   */
  agentId: string;
  /** Host address published ports bind to (127.0.0.1 unless configured). */
  publishAddress: string;
  /** Global CLI flags per runtime, e.g. podman's --root/--runroot. */
  globalArgs: Record<ContainerRuntime, string[]>;
  stopGraceSeconds: number;
  /** How often running containers are checked. */
  checkIntervalMs: number;
}

/** Optional health check in the directive's `config.health`. */
const HealthSchema = z.strictObject({
  /** GET http://127.0.0.1:<host_port><path> must answer 2xx. */
  http: z.strictObject({ port: z.number().int().min(1).max(65535), path: z.string().default("/") })
    .optional(),
  /** A command run inside the container must exit 0. */
  command: z.array(z.string()).min(1).optional(),
  /** How long activation waits for the first healthy answer. */
  timeout_seconds: z.number().min(1).max(600).default(30),
});

const ContainerConfigSchema = z.object({ health: HealthSchema.optional() }).passthrough();

/** A directive's container settings, checked, with the CLI of its runtime. */
interface ContainerSpec {
  type: Extract<DeploymentDirective["artifact"]["artifact_type"], { type: "container" }>;
  cli: ContainerCli;
  health?: z.infer<typeof HealthSchema>;
}

const INSTANCE_LABEL = "loam.instance";
const AGENT_LABEL = "loam.agent";
const START_GRACE_MS = 1000;
const LOG_LINES = 500;

interface Running {
  directiveId: string;
  cli: ContainerCli;
  name: string;
  image: string;
  startedAt: string;
  ports: string[];
  state?: ContainerState;
  failed?: boolean;
  /** Consecutive checks that found it not running (one can fall between two restarts). */
  downChecks: number;
}

/**
 * `loam-<instance id>-<8 hex>`: the hex is a hash of the agent's peer id and the instance id, so
 * agents on one host never share a name, and replacing `:` (names may not hold it) with `_` makes
 * no two of one agent's instances share one. At most 146 characters.
 */
function containerName(agentId: string, instanceId: string): string {
  const tag = createHash("sha256").update(`${agentId}\n${instanceId}`).digest("hex").slice(0, 8);
  return `loam-${instanceId.replaceAll(":", "_")}-${tag}`;
}

/** The name a loam from before agent labels gave the instance's container (no agent label). */
function legacyContainerName(instanceId: string): string {
  return `loam-${instanceId}`;
}

/**
 * `container`: the blob is an image archive (docker-archive or OCI), loaded with the directive's
 * runtime CLI (podman, docker, or nerdctl for containerd) and run detached: labelled as loam's,
 * `--init`, no new privileges, never privileged or on the host network, ports published on
 * `publishAddress` only, and the directive's env. Health: the runtime's state plus an optional
 * HTTP or command check. Containers keep running across agent restarts and are adopted again;
 * this agent's ones (labelled with its peer id) without an active deployment are removed, and
 * other agents' are never touched.
 */
export class ContainerAdapter implements RuntimeAdapter {
  readonly kind = "container" as const;
  readonly #settings: ContainerSettings;
  readonly #logger: Logger;
  readonly #onFailed: InstanceFailed;
  readonly #running = new Map<string, Running>();
  #timer?: ReturnType<typeof setInterval>;

  constructor(settings: ContainerSettings, logger: Logger, onFailed: InstanceFailed) {
    this.#settings = settings;
    this.#logger = logger;
    this.#onFailed = onFailed;
  }

  /**
   * On abort of `signal`, the container it ran is removed, and the image it loaded unless another
   * container uses it.
   */
  async activate(
    directive: DeploymentDirective,
    blobPath: string,
    signal: AbortSignal,
  ): Promise<Instance> {
    const instanceId = `ctr-${directive.directive_id}`;
    const spec = this.#spec(directive);
    await this.#start(directive, spec, instanceId, blobPath, signal);
    return { instance_id: instanceId, provider: spec.cli.runtime };
  }

  /**
   * Adopts the container when it still runs, starts it when stopped, recreates it when gone. A
   * container an older loam ran for this instance (its old name, no agent label) is adopted as
   * well, in place, so that an upgrade restarts no workload.
   */
  async resume(directive: DeploymentDirective, instanceId: string, blobPath: string) {
    const spec = this.#spec(directive);
    const { cli } = spec;
    const found = await this.#find(cli, instanceId);
    if (found?.state.running) {
      this.#track(directive, instanceId, cli, found.name, "", found.state);
      this.#logger.info("container adopted", { instance_id: instanceId, container: found.name });
      return;
    }
    if (found) await cli.try(["rm", "-f", found.name]);
    await this.#start(directive, spec, instanceId, blobPath);
  }

  /** This agent's container for the instance, by its name or by the name an older loam gave. */
  async #find(cli: ContainerCli, instanceId: string) {
    const name = containerName(this.#settings.agentId, instanceId);
    const state = await cli.inspect(name);
    if (state) return { name, state };
    const legacy = legacyContainerName(instanceId);
    const old = await cli.inspect(legacy);
    if (old?.labels[INSTANCE_LABEL] !== instanceId || AGENT_LABEL in old.labels) return undefined;
    return { name: legacy, state: old };
  }

  async deactivate(instanceId: string): Promise<void> {
    const running = this.#running.get(instanceId);
    if (!running) return;
    this.#running.delete(instanceId);
    const { cli, name, image } = running;
    await cli.try(["stop", "-t", String(this.#settings.stopGraceSeconds), name]);
    await cli.try(["rm", "-f", name]);
    // the image goes when no other container uses it (rmi refuses while one does)
    if (image) await cli.try(["rmi", image]);
    this.#logger.info("container removed", { instance_id: instanceId });
    if (this.#running.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** Containers keep running while the agent restarts (they are adopted at the next start). */
  stopAll(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#running.clear();
    return Promise.resolve();
  }

  /**
   * Removes this agent's containers (labelled with its peer id) that belong to no active
   * deployment. Other agents' containers are not its to judge, nor are those of a loam from before
   * agent labels (one whose instance is active is adopted by `resume`; others stay).
   */
  async reconcile(activeInstanceIds: string[]): Promise<void> {
    const runtimes = Object.keys(this.#settings.globalArgs) as ContainerRuntime[];
    await Promise.all(runtimes.map(async (runtime) => {
      const cli = new ContainerCli(runtime, this.#settings.globalArgs[runtime]);
      let labelled: { name: string; labels: Record<string, string> }[];
      try {
        labelled = await cli.listLabelled(`${AGENT_LABEL}=${this.#settings.agentId}`);
      } catch {
        return; // runtime not installed or not usable here
      }
      for (const container of labelled) {
        const instanceId = container.labels[INSTANCE_LABEL];
        if (instanceId && activeInstanceIds.includes(instanceId)) continue;
        this.#logger.warn("removing a loam container with no active deployment", {
          container: container.name,
          instance_id: instanceId,
        });
        await cli.try(["rm", "-f", container.name]);
      }
    }));
  }

  list(): InstanceView[] {
    return [...this.#running.entries()].map(([id, r]) => ({
      instance_id: id,
      directive_id: r.directiveId,
      adapter: "container",
      state: r.state?.status ?? "unknown",
      provider: r.cli.runtime,
      started_at: r.startedAt,
      ...(r.state && !r.state.running ? { exit_code: r.state.exitCode } : {}),
      container: r.name,
      image: r.image || null,
      ports: r.ports,
      pid: r.state?.pid || null,
    }));
  }

  /** Each running container's CPU and memory, from its runtime's stats (one call per runtime). */
  async usage(): Promise<Map<string, WorkloadUsage>> {
    const usage = new Map<string, WorkloadUsage>();
    const byCli = new Map<ContainerCli, Map<string, string>>();
    for (const [id, r] of this.#running) {
      if (!r.state?.running) continue;
      if (!byCli.has(r.cli)) byCli.set(r.cli, new Map());
      byCli.get(r.cli)!.set(r.name, id);
    }
    for (const [cli, ids] of byCli) {
      for (const [name, stats] of await cli.stats([...ids.keys()])) {
        usage.set(ids.get(name)!, {
          ...stats,
          usage_source: cli.runtime === "containerd" ? "nerdctl" : cli.runtime,
        });
      }
    }
    return usage;
  }

  /** The container's last output lines, from the runtime. */
  async logs(instanceId: string, count = LOG_LINES): Promise<LogLine[] | undefined> {
    const running = this.#running.get(instanceId);
    if (!running) return undefined;
    return await running.cli.logs(running.name, count);
  }

  #spec(directive: DeploymentDirective): ContainerSpec {
    const type = directive.artifact.artifact_type;
    if (type.type !== "container") throw new Error(`not a container: ${type.type}`);
    const config = ContainerConfigSchema.safeParse(directive.config ?? {});
    if (!config.success) {
      const issue = config.error.issues[0]!;
      throw new Error(`config.${issue.path.join(".")}: ${issue.message}`);
    }
    const cli = new ContainerCli(type.runtime, this.#settings.globalArgs[type.runtime]);
    return { type, cli, health: config.data.health };
  }

  /**
   * Loads the image and runs the container. `signal` is an activation's: a container that is not
   * healthy fails it, and an abort removes the container and the image it loaded (kept while
   * another container uses it) before rejecting with the signal's reason. A resume (no signal)
   * keeps a container that is not healthy, with a warning.
   */
  async #start(
    directive: DeploymentDirective,
    spec: ContainerSpec,
    instanceId: string,
    blobPath: string,
    signal?: AbortSignal,
  ): Promise<void> {
    const { cli } = spec;
    const name = containerName(this.#settings.agentId, instanceId);
    let image = "";
    let ran: { state: ContainerState; ports: string[] };
    try {
      image = await cli.load(blobPath, signal);
      ran = await this.#run(directive, spec, instanceId, name, image, signal);
      signal?.throwIfAborted();
    } catch (err) {
      if (!signal?.aborted) throw err;
      await cli.try(["rm", "-f", name]);
      if (image) await cli.try(["rmi", image]);
      this.#logger.info("container activation aborted", { instance_id: instanceId });
      throw signal.reason;
    }
    this.#track(directive, instanceId, cli, name, image, ran.state, ran.ports);
    this.#logger.info("container running", { instance_id: instanceId, image, ports: ran.ports });
  }

  /** Runs `image` as `name` and waits until it is running (and healthy, when asked). */
  async #run(
    directive: DeploymentDirective,
    { type, cli, health }: ContainerSpec,
    instanceId: string,
    name: string,
    image: string,
    signal?: AbortSignal,
  ): Promise<{ state: ContainerState; ports: string[] }> {
    await cli.try(["rm", "-f", name], signal); // a leftover of an earlier try
    const address = this.#settings.publishAddress;
    const ports = type.ports.map((p) =>
      `${address}:${p.host_port}:${p.container_port}/${p.protocol}`
    );
    const args = [
      "run",
      "-d",
      "--name",
      name,
      "--label",
      `${AGENT_LABEL}=${this.#settings.agentId}`,
      "--label",
      `${INSTANCE_LABEL}=${instanceId}`,
      "--label",
      `loam.deployment=${directive.directive_id}`,
      "--init",
      "--security-opt",
      "no-new-privileges",
      "--restart",
      "on-failure:3",
      ...ports.flatMap((p) => ["-p", p]),
      ...Object.entries(type.env).flatMap(([k, v]) => ["-e", `${k}=${v}`]),
      image,
    ];
    try {
      await cli.call(args, signal);
    } catch (err) {
      await cli.try(["rm", "-f", name]); // a failed `run -d` leaves it "created"
      throw err;
    }
    await sleep(START_GRACE_MS, signal);
    const state = await cli.inspect(name, signal);
    if (!state?.running) {
      const tail = (await cli.logs(name, 5)).map((l) => l.line).join(" | ");
      await cli.try(["rm", "-f", name]);
      const why = state ? `exited with code ${state.exitCode}` : "vanished";
      throw new Error(`container ${why} right after start${tail ? `: ${tail}` : ""}`);
    }
    if (health) {
      try {
        await this.#waitHealthy(cli, name, health, signal);
      } catch (err) {
        if (signal) {
          await cli.try(["rm", "-f", name]);
          throw err;
        }
        this.#logger.warn("container not healthy after restart", { instance_id: instanceId });
      }
    }
    return { state, ports };
  }

  async #waitHealthy(
    cli: ContainerCli,
    name: string,
    health: z.infer<typeof HealthSchema>,
    signal?: AbortSignal,
  ) {
    const deadline = Date.now() + health.timeout_seconds * 1000;
    let last = "no answer yet";
    while (Date.now() < deadline) {
      if (health.http) {
        const url = `http://127.0.0.1:${health.http.port}${health.http.path}`;
        const timeout = AbortSignal.timeout(2000);
        try {
          const res = await fetch(url, {
            signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
          });
          await res.body?.cancel();
          if (res.ok) return;
          last = `${url} answered ${res.status}`;
        } catch (err) {
          last = `${url}: ${(err as Error).message}`;
        }
      } else if (health.command) {
        const code = await cli.try(["exec", name, ...health.command], signal);
        if (code === 0) return;
        last = `${health.command.join(" ")} exited ${code}`;
      } else {
        return;
      }
      await sleep(250, signal);
    }
    throw new Error(`health check failed for ${health.timeout_seconds} s: ${last}`);
  }

  #track(
    directive: DeploymentDirective,
    instanceId: string,
    cli: ContainerCli,
    name: string,
    image: string,
    state: ContainerState,
    ports: string[] = [],
  ): void {
    this.#running.set(instanceId, {
      directiveId: directive.directive_id,
      cli,
      name,
      image,
      startedAt: new Date().toISOString(),
      ports,
      state,
      downChecks: 0,
    });
    this.#timer ??= setInterval(() => this.#check(), this.#settings.checkIntervalMs);
  }

  /** A container that stopped for good (its runtime's restarts used up) fails its deployment. */
  async #check(): Promise<void> {
    for (const [instanceId, running] of this.#running) {
      const state = await running.cli.inspect(running.name);
      running.state = state;
      if (state?.running || state?.status === "restarting") running.downChecks = 0;
      else running.downChecks++;
      if (running.downChecks < 2 || running.failed) continue;
      running.failed = true;
      const why = state
        ? `container ${state.status} with code ${state.exitCode}`
        : "container vanished";
      this.#logger.warn("container failed", { instance_id: instanceId, reason: why });
      this.#onFailed(instanceId, why);
    }
  }
}
