/**
 * Two boxes on one LAN, for real: two network namespaces joined by a veth pair (10.77.0.0/24),
 * an agent in each. Needs root and `ip netns`; skips with the reason otherwise.
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type AgentProcess, runLoam, startAgent, tempDir } from "./harness.ts";
import { agentFlags } from "../../tasks/permissions.ts";
import { sleep } from "../../src/system/sleep.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const tag = crypto.randomUUID().slice(0, 6);
const NS = [`loam-a-${tag}`, `loam-b-${tag}`] as const;
const VETH = [`la${tag}`, `lb${tag}`] as const;

async function ip(...args: string[]): Promise<{ ok: boolean; err: string }> {
  try {
    const out = await new Deno.Command("ip", { args, stdout: "null", stderr: "piped" }).output();
    return { ok: out.success, err: new TextDecoder().decode(out.stderr).trim() };
  } catch (err) {
    return { ok: false, err: (err as Error).message };
  }
}

/** Creates the two namespaces and the link; the reason it cannot, or undefined. */
async function makeLan(): Promise<string | undefined> {
  if (Deno.uid() !== 0) return "needs root for network namespaces";
  const steps: string[][] = [
    ["netns", "add", NS[0]],
    ["netns", "add", NS[1]],
    [
      "link",
      "add",
      VETH[0],
      "netns",
      NS[0],
      "type",
      "veth",
      "peer",
      "name",
      VETH[1],
      "netns",
      NS[1],
    ],
  ];
  for (const [i, ns] of NS.entries()) {
    steps.push(
      ["-n", ns, "addr", "add", `10.77.0.${i + 1}/24`, "dev", VETH[i]!],
      ["-n", ns, "link", "set", VETH[i]!, "multicast", "on", "up"],
      ["-n", ns, "link", "set", "lo", "up"],
      ["-n", ns, "route", "add", "224.0.0.0/4", "dev", VETH[i]!],
    );
  }
  for (const step of steps) {
    const res = await ip(...step);
    if (!res.ok) return `ip ${step.join(" ")} failed: ${res.err}`;
  }
  return undefined;
}

async function dropLan(): Promise<void> {
  for (const ns of NS) await ip("netns", "del", ns);
}

const skip = await makeLan();
if (skip) {
  console.log(`SKIP LAN tests: ${skip}`);
  await dropLan();
}

/** A wrapper that runs the agent (source, or LOAM_TEST_BINARY) inside namespace `ns`. */
async function inNamespace(dir: string, ns: string): Promise<string> {
  const binary = Deno.env.get("LOAM_TEST_BINARY");
  const agent = binary
    ? `sh '${binary}'`
    : `'${Deno.execPath()}' run ${agentFlags().join(" ")} '${MAIN}'`;
  const wrapper = join(dir, `${ns}.sh`);
  await Deno.writeTextFile(wrapper, `#!/bin/sh\nexec ip netns exec ${ns} ${agent} "$@"\n`);
  return wrapper;
}

function connectedTo(agent: AgentProcess, other: AgentProcess): boolean {
  const id = other.meshAddrs[0]!.split("/p2p/")[1];
  return agent.logs.some((l) => l.msg === "peer connected" && l.peer === id);
}

Deno.test({
  name: "on a LAN, two members holding one fleet key find each other by mDNS with no address",
  ignore: skip !== undefined,
  async fn() {
    await using dir = await tempDir();
    const key = join(dir.path, "fleet.key");
    assert.equal((await runLoam(["keys", "fleet", "--out", key])).code, 0);
    const lan = ["--mesh-listen", "/ip4/0.0.0.0/tcp/0", "--set", "mesh.advert_interval=1"];
    const start = async (name: string, ns: string, more: string[]) =>
      startAgent(join(dir.path, name), [...lan, ...more], {
        binary: await inNamespace(dir.path, ns),
      });
    const x = await start("x", NS[0], ["--fleet-key", key]);
    const y = await start("y", NS[1], ["--fleet-key", key]);
    // an open node on the same LAN, with mDNS on: it may find them, never join them
    const stranger = await start("z", NS[1], ["--set", "mesh.mdns=true"]);
    try {
      const deadline = Date.now() + 20_000;
      while (!(connectedTo(x, y) && connectedTo(y, x)) && Date.now() < deadline) {
        await sleep(200);
      }
      assert.ok(connectedTo(x, y) && connectedTo(y, x), "x and y connected by mDNS alone");
      // the stranger found them too, and was refused
      const refused = () =>
        [x, y].some((a) => a.logs.some((l) => l.msg.startsWith("fleet key mismatch")));
      while (!refused() && Date.now() < deadline) await sleep(200);
      assert.ok(refused(), "a member logged the stranger's attempt as a fleet key mismatch");
      assert.ok(!connectedTo(x, stranger) && !connectedTo(stranger, x), "the open node is out");
      assert.ok(!connectedTo(y, stranger) && !connectedTo(stranger, y), "the open node is out");
    } finally {
      await Promise.all([x, y, stranger].map((a) => a.stop()));
    }
  },
});

globalThis.addEventListener("unload", () => {
  for (const ns of NS) {
    new Deno.Command("ip", { args: ["netns", "del", ns], stderr: "null" }).outputSync();
  }
});
