import { INSTALLED } from "./installed_layout.ts";
/** What the unit is made for. */
export interface UnitOptions {
  /** What ExecStart runs: the installed layout's current file. */
  binary: string;
  /** The config file passed with --config. */
  config: string;
  /** Run as this system user instead of root. */
  user?: string;
  /** NVIDIA GPU / Jetson device access (devices, video/render groups). */
  gpu: boolean;
  /** Container runtimes (podman/docker): namespaces, cgroups, the docker socket. */
  containers: boolean;
  /** systemd's watchdog interval; the agent pings at half of it. */
  watchdogSeconds: number;
  /** Extra writable paths (config_package targets under the read-only system). */
  writablePaths: string[];
  /** The installed fleet key (`LOAM_MESH_FLEET_KEY_FILE`); none = an open mesh. */
  fleetKeyFile?: string;
}

/** The unit's defaults, as `loam install` uses them without flags. */
export const DEFAULT_UNIT: UnitOptions = {
  binary: INSTALLED.executable,
  config: "/etc/loam/loam.toml",
  gpu: false,
  containers: false,
  watchdogSeconds: 30,
  writablePaths: [],
};

/** Device nodes of NVIDIA's desktop/server driver and of Jetson (L4T) boards. */
const GPU_DEVICES = [
  "/dev/nvidia0",
  "/dev/nvidiactl",
  "/dev/nvidia-uvm",
  "/dev/nvidia-uvm-tools",
  "/dev/nvidia-modeset",
  "/dev/nvhost-ctrl",
  "/dev/nvhost-ctrl-gpu",
  "/dev/nvhost-prof-gpu",
  "/dev/nvhost-gpu",
  "/dev/nvhost-as-gpu",
  "/dev/nvmap",
  "/dev/dri/renderD128",
];

/**
 * Renders loam.service: `Type=notify` with a watchdog, restart on failure, and hardening that
 * keeps V8 working (never `MemoryDenyWriteExecute`: the JIT needs writable+executable memory).
 * `--gpu` and `--containers` relax exactly what those need, with the reason in a comment.
 */
export function renderUnit(o: UnitOptions): string {
  const lines = [
    "# loam edge agent, written by `loam install`; `loam install --dry-run` shows a new one.",
    "[Unit]",
    "Description=loam edge agent (deployments, inference, mesh)",
    "Wants=network-online.target",
    "After=network-online.target",
    "",
    "[Service]",
    "Type=notify",
    "NotifyAccess=main",
    `ExecStart=${o.binary} run --config ${o.config}`,
    "Environment=LOAM_DATA_DIR=/var/lib/loam",
    // a self-extracting loam unpacks its runtime into the state dir, which the service may write
    "Environment=LOAM_RUNTIME_DIR=/var/lib/loam/runtime",
    ...(o.fleetKeyFile ? [`Environment=LOAM_MESH_FLEET_KEY_FILE=${o.fleetKeyFile}`] : []),
    ...(o.user ? [`User=${o.user}`, `Group=${o.user}`] : []),
    "StateDirectory=loam",
    "StateDirectoryMode=0700",
    "ConfigurationDirectory=loam",
    `WatchdogSec=${o.watchdogSeconds}`,
    "Restart=on-failure",
    "# exit code 75: the agent asks to be started again (a new version is in place)",
    "RestartForceExitStatus=75",
    "RestartSec=5",
    "TimeoutStartSec=120",
    "TimeoutStopSec=30",
    "# only the agent is signalled: its native programs outlive a crash, a watchdog restart or a",
    "# self-update and are adopted; on a stop the agent stops them itself",
    "KillMode=process",
    "LimitNOFILE=65536",
    "UMask=0077",
    "",
    "# hardening (systemd-analyze security loam); MemoryDenyWriteExecute is off on purpose: V8's JIT",
    "ProtectSystem=strict",
    `ReadWritePaths=${["/var/lib/loam", ...o.writablePaths].join(" ")}`,
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "ProtectProc=invisible",
    "LockPersonality=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "RemoveIPC=yes",
    "SystemCallArchitectures=native",
    "# a call the filter refuses fails with EPERM instead of killing the agent",
    "SystemCallErrorNumber=EPERM",
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
  ];
  if (o.gpu) {
    lines.push(
      "# --gpu: the NVIDIA / Jetson device nodes and the groups that own them",
      "PrivateDevices=no",
      "DevicePolicy=closed",
      ...GPU_DEVICES.map((d) => `DeviceAllow=${d} rw`),
      "DeviceAllow=char-nvidia-frontend rw",
      "DeviceAllow=char-nvidia-uvm rw",
      "SupplementaryGroups=video render",
    );
  } else {
    lines.push("PrivateDevices=yes");
  }
  if (o.containers) {
    lines.push(
      "# --containers: podman/docker create namespaces and cgroups and run setuid helpers",
      "NoNewPrivileges=no",
      "RestrictNamespaces=no",
      "ProtectControlGroups=no",
      "ReadWritePaths=/var/lib/containers /run/containers /var/run/docker.sock",
      "SystemCallFilter=@system-service @pkey @mount @privileged",
    );
  } else {
    lines.push(
      "NoNewPrivileges=yes",
      "RestrictNamespaces=yes",
      "ProtectControlGroups=yes",
      // V8 protects its JIT code with memory protection keys (@pkey is not in @system-service:
      // without it systemd killed the agent with SIGSYS before it logged a line)
      ...(o.user
        ? [
          "SystemCallFilter=@system-service @pkey",
          "SystemCallFilter=~@privileged @resources",
          "CapabilityBoundingSet=",
        ]
        : [
          "# as root, native workloads run as workloads.user (nobody): the agent gives them their",
          "# instance dir, switches to their uid, and stops and removes what they own",
          "SystemCallFilter=@system-service @pkey @chown @setuid",
          "SystemCallFilter=~@clock @module @raw-io @reboot @swap @cpu-emulation @debug @obsolete @resources",
          "CapabilityBoundingSet=CAP_CHOWN CAP_SETUID CAP_SETGID CAP_KILL CAP_DAC_OVERRIDE CAP_FOWNER",
        ]),
    );
  }
  lines.push("", "[Install]", "WantedBy=multi-user.target", "");
  return lines.join("\n");
}
