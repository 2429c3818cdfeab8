/**
 * Helpers for multi-agent mesh tests: polling, metrics, peers and blob requests over the real
 * local API of each agent.
 * @module
 */
import type { AgentProcess } from "./harness.ts";
import { sleep } from "../../src/system/sleep.ts";

/** Polls `check` every 100 ms until it returns a truthy value; fails after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T>,
  timeoutMs = 20_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    }
    await sleep(100);
  }
}

/** The value of one Prometheus sample, e.g. `metric(a, 'loam_mesh_messages_dropped_total{reason="oversized"}')`. */
export async function metric(agent: AgentProcess, sample: string): Promise<number> {
  const text = await (await agent.request("/metrics", { token: agent.adminToken() })).text();
  const line = text.split("\n").find((l) => l.startsWith(sample + " "));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}

/** A peer entry of /v1/peers. */
export interface PeerEntry {
  peer_id: string;
  connected: boolean;
  latency_ms: number | null;
  advert: { node_id: string; blobs: number; instances: number; version: string } | null;
}

/** GET /v1/peers. */
export async function peersOf(agent: AgentProcess): Promise<PeerEntry[]> {
  const res = await agent.request("/v1/peers", { token: agent.adminToken() });
  return (await res.json()).peers;
}

/** POST /v1/blobs: makes the agent fetch a blob (from peers, or the given URLs). */
export async function requestBlob(
  agent: AgentProcess,
  body: { sha256: string; size?: number; urls?: string[] },
): Promise<{ status: number; body: { path?: string; error?: { message: string } } }> {
  const res = await fetch(`${agent.apiUrl}/v1/blobs`, {
    method: "POST",
    headers: { authorization: `Bearer ${agent.adminToken()}` },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(120_000),
  });
  return { status: res.status, body: await res.json() };
}

/** Peer id of an agent (the /p2p/ part of its mesh address). */
export function peerIdOf(agent: AgentProcess): string {
  return agent.meshAddrs[0]!.split("/p2p/")[1]!;
}

/** Whether `agent` is connected to `other` and has its advert (what mesh-forming tests wait for). */
export async function hasConnectedAdvert(
  agent: AgentProcess,
  other: AgentProcess,
): Promise<boolean> {
  return (await peersOf(agent)).some((p) =>
    p.peer_id === peerIdOf(other) && p.connected && p.advert !== null
  );
}
