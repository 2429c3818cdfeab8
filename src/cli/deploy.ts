import { Registry } from "prom-client";
import type { Command } from "./command.ts";
import { parseFlags, println } from "./command.ts";
import { CONFIG_OPTIONS, CONFIG_OPTIONS_HELP, loadConfigFromFlags } from "./config_flags.ts";
import { ephemeralIdentity, type Identity, readIdentity } from "../mesh/identity.ts";
import { createMeshNode } from "../mesh/node.ts";
import { redialBootstrap } from "../mesh/bootstrap_redial.ts";
import { readFleetKey } from "../mesh/fleet_key.ts";
import { fleetKeyProtector } from "../mesh/fleet_guard.ts";
import { MeshMessaging } from "../mesh/messaging.ts";
import { queryStatuses } from "../mesh/status_query.ts";
import { type DeploymentDirective, DeploymentDirectiveSchema } from "../protocol/directive.ts";
import type { DeploymentStatus } from "../protocol/status.ts";
import { DeploymentWatch } from "./deploy_watch.ts";
import { createLogger } from "../system/logger.ts";
import { UserError } from "../system/errors.ts";
import { directiveFromRegistry } from "./deploy_model.ts";
import { sleep } from "../system/sleep.ts";

const HELP = `Usage: loam deploy [<directive.json>] --key <c2.key> --bootstrap <multiaddr> [options]
       loam deploy --watch-only <directive id> --bootstrap <multiaddr> [options]

Signs a deployment directive with the command post's key and publishes it on the mesh. Agents
accept it when the key's peer id is in their mesh.trusted_issuers. Nodes that are offline get it
from their peers when they come back (until it expires: expires_at, else issued_at +
deploy.directive_ttl_hours).

  <directive.json>       the directive (directive_id, issued_at and issuer_node_id are filled
                         in when missing); or build one from the flags below
  --key <file>           the command post's identity (loam keys generate --out c2.key)
  --bootstrap <maddr>    an agent to join the mesh through (repeatable; also mesh.bootstrap)
  --listen <maddr>       where this command listens (default /ip4/0.0.0.0/tcp/0)
  --watch                show each node's state (node id, short peer id, state, progress) until
                         every reporting node is final; exit 0 when all are active, 1 otherwise.
                         Nodes are counted by peer id; a node id reported by two peer ids is
                         warned about
  --expect <n>           with --watch or --watch-only: wait until n nodes have reported and are
                         final, so nodes that join late are shown arriving (default: the
                         first quiet spell ends it)
  --watch-only <id>      publish nothing: show the fleet's current state of a directive published
                         earlier (each node's last signed report, from the nodes reached), then
                         follow it as --watch does; --key is not needed
  --timeout <s>          give up watching after this long (default 300)
  --quiet-seconds <s>    with --watch: final once no new node reported for this long (default 5)
  --rollback-threshold <percent>
                         when fewer than this share of the reporting nodes end active, publish a
                         signed rollback (the nodes deactivate it) and exit 1; implies --watch
                         (default: the directive's options.rollback_threshold_percent)

  Building the directive from flags:
  --artifact-url <url> --sha256 <hex> --size <bytes> --type <artifact type>
  --scope <broadcast | formation:<id> | nodes:<a,b>>   (default broadcast)
  --name <name>  --arch <arch>  --target-path <dir>  --arg <arg> (repeatable)  --id <directive id>
  --model <id>[@version] [--api <url> --token <token>]
                         the registry's model (found through the local agent's API, or the
                         one at --api): its manifest gives the file, size, SHA-256 and URL;
                         @version must be the entry's version. With --scope as above
  --type loam_agent --agent-version <v> [--allow-downgrade]
                         a new loam file for the fleet: the nodes of --arch (default this
                         machine's) replace themselves with it and roll back if it does not
                         come up; --watch shows each node's version as it changes

${CONFIG_OPTIONS_HELP}`;

type Values = Record<string, string | string[] | boolean | undefined>;

/** How often a watch dials the bootstrap agents it lost (they may be restarting). */
const REDIAL_MS = 2000;

function scopeFrom(text: string): DeploymentDirective["scope"] {
  if (text === "broadcast") return { type: "broadcast" };
  const [kind, rest] = [text.slice(0, text.indexOf(":")), text.slice(text.indexOf(":") + 1)];
  if (kind === "formation" && rest) return { type: "formation", formation_id: rest };
  if (kind === "nodes" && rest) return { type: "nodes", node_ids: rest.split(",") };
  throw new UserError(`--scope "${text}": expected broadcast, formation:<id> or nodes:<a,b>`);
}

function directiveFromFlags(v: Values): Record<string, unknown> {
  const type = v.type as string | undefined;
  if (!v["artifact-url"] || !v.sha256 || !v.size || !type) {
    throw new UserError(
      "deploy: give a directive file, or --artifact-url, --sha256, --size and --type",
    );
  }
  const artifactType: Record<string, unknown> = { type };
  if (type === "native_binary") {
    artifactType.arch = v.arch ?? Deno.build.arch;
    artifactType.args = v.arg ?? [];
  }
  if (type === "config_package") artifactType.target_path = v["target-path"];
  if (type === "loam_agent") {
    artifactType.version = v["agent-version"];
    if (v["allow-downgrade"]) artifactType.allow_downgrade = true;
  }
  // a loam file is for one architecture: nodes of another are not targeted (they do not fail)
  const scope = type === "loam_agent" && v.scope === undefined
    ? { type: "capability", arch: v.arch ?? Deno.build.arch }
    : scopeFrom((v.scope as string | undefined) ?? "broadcast");
  return {
    ...(v.id ? { directive_id: v.id } : {}),
    scope,
    artifact: {
      blob_hash: `sha256:${String(v.sha256).replace(/^sha256:/, "")}`,
      size_bytes: Number(v.size),
      urls: [v["artifact-url"]],
      ...(v.name ? { name: v.name } : {}),
      artifact_type: artifactType,
    },
  };
}

async function readDirective(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new UserError(`cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UserError(`${path} is not JSON: ${(err as Error).message}`);
  }
}

/** Polls `done` every 200 ms until it is true (resolves true) or `deadline` passes (false). */
async function until(done: () => boolean, deadline: number): Promise<boolean> {
  while (!done()) {
    if (Date.now() > deadline) return false;
    await sleep(200);
  }
  return true;
}

/** `loam deploy`: sign and publish a directive, optionally watching the fleet's answers. */
export const deployCommand: Command = {
  name: "deploy",
  help: HELP,
  async run(args) {
    const parsed = parseFlags("deploy", args, {
      ...CONFIG_OPTIONS,
      key: { type: "string" },
      listen: { type: "string" },
      watch: { type: "boolean" },
      "watch-only": { type: "string" },
      expect: { type: "string" },
      timeout: { type: "string" },
      "quiet-seconds": { type: "string" },
      "artifact-url": { type: "string" },
      sha256: { type: "string" },
      size: { type: "string" },
      type: { type: "string" },
      scope: { type: "string" },
      name: { type: "string" },
      arch: { type: "string" },
      "target-path": { type: "string" },
      arg: { type: "string", multiple: true },
      "agent-version": { type: "string" },
      "allow-downgrade": { type: "boolean" },
      id: { type: "string" },
      model: { type: "string" },
      api: { type: "string" },
      token: { type: "string" },
      "rollback-threshold": { type: "string" },
    }, 1);
    if (parsed.help) {
      println(HELP);
      return 0;
    }
    const v = parsed.values;
    const watchOnly = v["watch-only"];
    if (!v.key && watchOnly === undefined) {
      throw new UserError("deploy: --key <c2.key> is required");
    }
    const loaded = await loadConfigFromFlags(v);
    if (loaded.config.mesh.bootstrap.length === 0) {
      throw new UserError("deploy: --bootstrap <multiaddr of an agent> is required");
    }
    const identity: Identity = v.key ? await readIdentity(v.key) : await ephemeralIdentity();
    const keyFile = loaded.config.mesh.fleet_key_file;
    const fleetKey = keyFile === undefined ? undefined : await readFleetKey(keyFile);
    const fromRegistry = v.model === undefined ? undefined : {
      ...await directiveFromRegistry(v.model, loaded, { url: v.api, token: v.token }),
      scope: scopeFrom(v.scope ?? "broadcast"),
      ...(v.id ? { directive_id: v.id } : {}),
    };
    const directive = watchOnly === undefined
      ? await directiveToPublish(parsed.positionals[0], v, identity, fromRegistry)
      : undefined;
    const directiveId = directive?.directive_id ?? watchOnly!;
    const thresholdText = v["rollback-threshold"];
    const threshold = thresholdText !== undefined
      ? Number(thresholdText)
      : directive?.options.rollback_threshold_percent;
    if (threshold !== undefined && !(threshold >= 0 && threshold <= 100)) {
      throw new UserError(`deploy: --rollback-threshold "${thresholdText}": expected 0-100`);
    }
    const expect = Number(v.expect ?? "1");
    if (!Number.isInteger(expect) || expect < 1) {
      throw new UserError(`deploy: --expect "${v.expect}": expected a whole number of nodes`);
    }
    const watch = v.watch || watchOnly !== undefined || threshold !== undefined;
    const timeoutMs = Number(v.timeout ?? "300") * 1000;
    const quietMs = Number(v["quiet-seconds"] ?? "5") * 1000;

    const logger = createLogger({ level: "error", format: loaded.config.log.format });
    const maxMessageBytes = loaded.config.mesh.max_message_bytes;
    const node = await createMeshNode({
      privateKey: identity.privateKey,
      listen: v.listen ?? "/ip4/0.0.0.0/tcp/0",
      bootstrap: loaded.config.mesh.bootstrap,
      network: loaded.config.mesh.network,
      mdns: false,
      maxMessageBytes,
      connectionProtector: fleetKey &&
        fleetKeyProtector(
          fleetKey.psk,
          (remote, why) => logger.error("fleet key mismatch", { remote: remote.toString(), why }),
        ),
    });
    // the agents it watches may restart meanwhile (a self-update does): it dials them again
    const redial = setInterval(
      () => void redialBootstrap(node, loaded.config.mesh.bootstrap),
      REDIAL_MS,
    );
    try {
      const messaging = new MeshMessaging({
        node,
        network: loaded.config.mesh.network,
        trustedIssuers: [],
        maxMessageBytes,
        privateKey: identity.privateKey,
        registry: new Registry(),
        logger,
      });
      const fleet = new DeploymentWatch();
      const show = (status: DeploymentStatus, signer: string) => {
        if (status.directive_id !== directiveId) return;
        const update = fleet.record(status, signer);
        if (!watch) return;
        if (update.warning) console.error(update.warning);
        if (update.line) println(update.line);
      };
      messaging.on("status", show);
      messaging.on("advert", (advert, signer) => {
        const line = fleet.version(signer, advert.node_id, advert.version);
        if (watch && line) println(line);
      });
      const deadline = Date.now() + timeoutMs;
      const pubsub = node.services.pubsub;
      const joined = await until(
        () => pubsub.getSubscribers(messaging.topics.directives).length > 0,
        Date.now() + 15_000,
      );
      if (!joined) {
        throw new UserError(
          "deploy: no agent reachable through --bootstrap within 15 s" +
            (fleetKey ? "" : " (a fleet that uses a fleet key needs --fleet-key)"),
          1,
        );
      }
      if (directive) {
        await messaging.publish("directive", directive);
        console.error(`published directive ${directiveId} (signed by ${identity.peerId})`);
        if (!watch) return 0;
      } else {
        for (const peer of node.getPeers()) {
          const statuses = await queryStatuses(node, peer, directiveId, maxMessageBytes).catch(
            (err) => {
              console.error(`deploy: ${peer} did not answer: ${(err as Error).message}`);
              return [];
            },
          );
          for (const { status, signer } of statuses) show(status, signer);
        }
        if (fleet.tally().reporting === 0) console.error(`no node has reported on ${directiveId}`);
      }
      const type = directive?.artifact.artifact_type;
      const version = type?.type === "loam_agent" ? type.version : undefined;
      if (!await until(() => fleet.settled(quietMs, expect, version), deadline)) {
        const { reporting } = fleet.tally();
        console.error(
          `deploy: gave up watching after ${timeoutMs / 1000} s` +
            (reporting < expect ? ` (${reporting} of ${expect} expected nodes reported)` : ""),
        );
        return 1;
      }
      const { reporting, active } = fleet.tally();
      console.error(`${active} of ${reporting} nodes active`);
      const bootstrap = loaded.config.mesh.bootstrap[0];
      console.error(
        `nodes that were offline get it when they return: loam deploy --watch-only ${directiveId} ` +
          `--bootstrap ${bootstrap} shows them`,
      );
      if (threshold === undefined || active * 100 >= threshold * reporting) {
        return active === reporting ? 0 : 1;
      }
      const reason = `${active} of ${reporting} nodes active, below the ${threshold}% threshold`;
      await messaging.publish("rollback", {
        rollback_id: `rollback-${directiveId}`,
        directive_id: directiveId,
        issued_at: new Date().toISOString(),
        issuer_node_id: identity.peerId,
        reason,
      });
      console.error(`published rollback of ${directiveId}: ${reason}`);
      const anyActive = () => fleet.statuses().some((s) => s.state === "active");
      await until(() => !anyActive(), Date.now() + Math.min(timeoutMs, 60_000));
      const undone = fleet.statuses().filter((s) => s.state === "rolled_back").length;
      const still = fleet.statuses().filter((s) => s.state === "active").length;
      console.error(`${undone} nodes rolled back` + (still ? `, ${still} still active` : ""));
      return 1;
    } finally {
      clearInterval(redial);
      await node.stop();
    }
  },
};

/**
 * The directive to sign: from a file or from the flags, with its id, issuer and `issued_at`
 * filled in when missing (issued now, so that its TTL counts from the publishing).
 */
async function directiveToPublish(
  file: string | undefined,
  v: Values,
  identity: Identity,
  fromRegistry?: Record<string, unknown>,
): Promise<DeploymentDirective> {
  const input = fromRegistry ?? (file ? await readDirective(file) : directiveFromFlags(v));
  const checked = DeploymentDirectiveSchema.safeParse({
    directive_id: `d-${crypto.randomUUID().slice(0, 8)}`,
    issued_at: new Date().toISOString(),
    issuer_node_id: identity.peerId,
    ...input,
  });
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    throw new UserError(`directive ${issue.path.join(".") || "body"}: ${issue.message}`);
  }
  return checked.data;
}
