/**
 * @module
 * The `loam` commands: one file per command in this folder, listed here with a one-line
 * summary and loaded on demand, so `loam version` does not load libp2p.
 */

import type { Command } from "./command.ts";

/** A command as the dispatcher knows it: name, one-line summary, and how to load it. */
export interface CommandEntry {
  name: string;
  summary: string;
  load(): Promise<Command>;
}

/**
 * Every `loam` command. Each is loaded only when used, so short commands (status, token, fetch)
 * do not pay for the mesh stack's modules at start-up.
 */
export const COMMANDS: CommandEntry[] = [
  {
    name: "run",
    summary: "start the agent in the foreground (zero config works)",
    load: async () => (await import("./run.ts")).runCommand,
  },
  {
    name: "status",
    summary: "ask the local agent how it is doing",
    load: async () => (await import("./status.ts")).statusCommand,
  },
  {
    name: "deployments",
    summary: "list, show, activate or remove the agent's deployments",
    load: async () => (await import("./deployments.ts")).deploymentsCommand,
  },
  {
    name: "instances",
    summary: "list or show what the agent runs (programs, containers, models, WASM)",
    load: async () => (await import("./instances.ts")).instancesCommand,
  },
  {
    name: "logs",
    summary: "print an instance's output; -f follows it",
    load: async () => (await import("./logs.ts")).logsCommand,
  },
  {
    name: "peers",
    summary: "list the mesh peers the agent knows",
    load: async () => (await import("./peers.ts")).peersCommand,
  },
  {
    name: "fleet",
    summary: "list every node the agent has heard from, with each deployment's state there",
    load: async () => (await import("./fleet.ts")).fleetCommand,
  },
  {
    name: "fetch",
    summary: "download a blob by SHA-256 into the store (resumable, verified)",
    load: async () => (await import("./fetch.ts")).fetchCommand,
  },
  {
    name: "deploy",
    summary: "sign and publish a deployment directive, and watch the fleet apply it",
    load: async () => (await import("./deploy.ts")).deployCommand,
  },
  {
    name: "blobs",
    summary: "list, garbage-collect or re-verify stored blobs",
    load: async () => (await import("./blobs.ts")).blobsCommand,
  },
  {
    name: "console",
    summary: "print a one-time login URL for the local web console",
    load: async () => (await import("./console.ts")).consoleCommand,
  },
  {
    name: "registry",
    summary: "list, show, publish or delete the fleet's model and agent registry entries",
    load: async () => (await import("./registry.ts")).registryCommand,
  },
  {
    name: "token",
    summary: "create, list or revoke API tokens",
    load: async () => (await import("./token.ts")).tokenCommand,
  },
  {
    name: "keys",
    summary: "generate or show an Ed25519 identity",
    load: async () => (await import("./keys.ts")).keysCommand,
  },
  {
    name: "config",
    summary: "print the effective configuration",
    load: async () => (await import("./config.ts")).configCommand,
  },
  {
    name: "install",
    summary: "install loam as a systemd service (--dry-run shows the unit)",
    load: async () => (await import("./install.ts")).installCommand,
  },
  {
    name: "uninstall",
    summary: "remove the systemd service (data kept unless --purge)",
    load: async () => (await import("./uninstall.ts")).uninstallCommand,
  },
  {
    name: "completion",
    summary: "print a bash, zsh or fish completion script",
    load: async () => (await import("./completion.ts")).completionCommand,
  },
  {
    name: "version",
    summary: "print the agent version",
    load: async () => (await import("./version.ts")).versionCommand,
  },
];
