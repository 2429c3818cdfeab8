import { basename, dirname, join } from "node:path";
import { readFleetKey } from "../mesh/fleet_key.ts";
import { installFileSteps } from "../system/installed_layout.ts";
import { VERSION } from "../version.ts";
import exampleConfig from "../../config/loam.example.toml" with { type: "text" };
import type { Command } from "./command.ts";
import { parseFlags, println } from "./command.ts";
import { DEFAULT_UNIT, renderUnit, type UnitOptions } from "../system/systemd_unit.ts";
import { atomicWriteFile } from "../system/atomic_write.ts";
import { UserError } from "../system/errors.ts";
import { applySteps, type InstallStep, printPlan } from "../system/service_steps.ts";

/** Where the unit goes. */
export const UNIT_PATH = "/etc/systemd/system/loam.service";

const HELP = `Usage: loam install [--dry-run] [--binary PATH] [--user NAME] [--config FILE]
                    [--gpu] [--containers] [--rw-path DIR]... [--watchdog-seconds N]
                    [--fleet-key FILE]

Installs loam as a systemd service (as root, on a system booted with systemd):
  1. copies this file (or --binary PATH) to /var/lib/loam/bin/<version>/loam, points
     /var/lib/loam/bin/current at it (the one before becomes previous) and links
     /usr/local/bin/loam to /var/lib/loam/bin/current/loam,
  2. creates the system user when --user names one that does not exist,
  3. creates /etc/loam with an example config when --config's file is missing, and
     copies --fleet-key's file to /etc/loam/fleet.key (mode 0600, the service user's),
  4. writes ${UNIT_PATH} (Type=notify, watchdog, restart on failure, hardening),
  5. systemctl daemon-reload, systemctl enable --now loam.
State lives in /var/lib/loam (StateDirectory=loam).

Options:
  --dry-run              print the unit on stdout and the steps on stderr; change nothing
  --binary PATH          the loam file to install (default: the running one, when it is a file)
  --user NAME            run the service as this system user (default: root)
  --config FILE          config file for the service (default: ${DEFAULT_UNIT.config})
  --gpu                  allow NVIDIA / Jetson GPU devices (device nodes, video/render groups)
  --containers           allow container runtimes (namespaces, cgroups, docker socket)
  --rw-path DIR          also writable for the service (config_package targets); repeatable
  --watchdog-seconds N   systemd watchdog interval (default ${DEFAULT_UNIT.watchdogSeconds})
  --fleet-key FILE       the fleet's key (loam keys fleet): only fleet members can join this
                         node's mesh; the unit sets LOAM_MESH_FLEET_KEY_FILE to the copy`;

/**
 * The file this loam runs from, when it is one: a self-extracting file names itself in
 * `LOAM_SELF` (its process is the Deno it extracted), a compiled one is its own executable;
 * `deno run` from source has none.
 */
function compiledBinary(): string | undefined {
  const self = Deno.env.get("LOAM_SELF");
  if (self) return self;
  const exec = Deno.execPath();
  return basename(exec) === "deno" ? undefined : exec;
}

/**
 * The version a loam file reports: the running one's own, or for another self-extracting file
 * what its header says (`--payload-info`); a compiled file given by path is taken to be this
 * version.
 */
async function versionOf(file: string): Promise<string> {
  if (file === Deno.env.get("LOAM_SELF")) return VERSION;
  const out = await new Deno.Command("sh", {
    args: [file, "--payload-info"],
    stdout: "piped",
    stderr: "null",
  })
    .output().catch(() => undefined);
  try {
    return out?.success
      ? String(JSON.parse(new TextDecoder().decode(out.stdout)).version)
      : VERSION;
  } catch {
    return VERSION;
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

async function run(program: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(program, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    const why = new TextDecoder().decode(out.stderr).trim();
    throw new UserError(`${program} ${args.join(" ")} failed: ${why}`, 1);
  }
}

/** `loam install`: the systemd service. */
export const installCommand: Command = {
  name: "install",
  help: HELP,
  async run(args) {
    const parsed = parseFlags("install", args, {
      "dry-run": { type: "boolean" },
      binary: { type: "string" },
      user: { type: "string" },
      config: { type: "string" },
      gpu: { type: "boolean" },
      containers: { type: "boolean" },
      "rw-path": { type: "string", multiple: true },
      "watchdog-seconds": { type: "string" },
      "fleet-key": { type: "string" },
    });
    if (parsed.help) {
      println(HELP);
      return 0;
    }
    const v = parsed.values;
    const watchdog = Number(v["watchdog-seconds"] ?? DEFAULT_UNIT.watchdogSeconds);
    if (!Number.isInteger(watchdog) || watchdog < 2) {
      throw new UserError("install: --watchdog-seconds must be a whole number ≥ 2");
    }
    if (v.user !== undefined && !/^[a-z_][a-z0-9_-]{0,31}$/.test(v.user)) {
      throw new UserError(`install: --user "${v.user}" is not a valid system user name`);
    }
    for (const path of v["rw-path"] ?? []) {
      if (!path.startsWith("/")) {
        throw new UserError(`install: --rw-path "${path}" must be absolute`);
      }
    }
    const source = v.binary ?? compiledBinary();
    // checked before anything changes: a bad key must not leave a service that cannot start
    const fleetKey = v["fleet-key"] === undefined ? undefined : await readFleetKey(v["fleet-key"]);
    const fleetKeyFile = fleetKey && join(dirname(DEFAULT_UNIT.config), "fleet.key");
    const options: UnitOptions = {
      ...DEFAULT_UNIT,
      ...(v.config ? { config: v.config } : {}),
      ...(v.user ? { user: v.user } : {}),
      gpu: v.gpu ?? false,
      containers: v.containers ?? false,
      watchdogSeconds: watchdog,
      writablePaths: v["rw-path"] ?? [],
      ...(fleetKeyFile ? { fleetKeyFile } : {}),
    };
    const unit = renderUnit(options);
    const steps: InstallStep[] = [];
    if (source === undefined) {
      steps.push({
        describe: "copy the loam binary: none given, and this is `deno run` (not a compiled " +
          "loam); pass --binary dist/loam-<arch>-linux (deno task build) or run the built file",
        run: () => Promise.reject(new UserError("install: no binary to install (see --binary)")),
      });
    } else {
      steps.push(...installFileSteps(source, await versionOf(source)));
    }
    if (options.user) {
      const user = options.user;
      steps.push({
        describe: `create system user ${user} unless it exists`,
        run: async () => {
          const known = await new Deno.Command("id", {
            args: ["-u", user],
            stdout: "null",
            stderr: "null",
          })
            .output();
          if (!known.success) {
            await run("useradd", [
              "--system",
              "--no-create-home",
              "--shell",
              "/usr/sbin/nologin",
              user,
            ]);
          }
        },
      });
    }
    steps.push({
      describe:
        `create ${dirname(options.config)}; write the example config to ${options.config} ` +
        "if it does not exist",
      run: async () => {
        await Deno.mkdir(dirname(options.config), { recursive: true, mode: 0o755 });
        if (!await exists(options.config)) await atomicWriteFile(options.config, exampleConfig);
      },
    });
    if (fleetKey && fleetKeyFile) {
      steps.push({
        describe: `install the fleet key ${fleetKey.fingerprint} as ${fleetKeyFile} (mode 0600` +
          `${options.user ? `, owned by ${options.user}` : ""})`,
        run: async () => {
          await Deno.mkdir(dirname(fleetKeyFile), { recursive: true, mode: 0o755 });
          await atomicWriteFile(fleetKeyFile, fleetKey.psk, { mode: 0o600 });
          if (options.user) await run("chown", [`${options.user}:`, fleetKeyFile]);
        },
      });
    }
    steps.push({
      describe: `write ${UNIT_PATH}`,
      run: () => atomicWriteFile(UNIT_PATH, unit, { mode: 0o644 }),
    });
    steps.push({
      describe: "systemctl daemon-reload",
      run: () => run("systemctl", ["daemon-reload"]),
    });
    steps.push({
      describe: "systemctl enable --now loam",
      run: () => run("systemctl", ["enable", "--now", "loam"]),
    });

    if (v["dry-run"]) {
      Deno.stdout.writeSync(new TextEncoder().encode(unit));
      printPlan(steps);
      return 0;
    }
    await applySteps("install", steps);
    println(`loam installed: systemctl status loam; journalctl -u loam -f`);
    return 0;
  },
};
