import assert from "node:assert/strict";
import { startTestNode } from "../../tests/fixtures/mesh_node.ts";
import { INFER_PROTOCOL, InferChannel } from "./infer_protocol.ts";
import { SpareStreams } from "./infer_streams.ts";
import { sleep } from "../system/sleep.ts";

/**
 * An executor's side of the stream protocol, reduced to its framing: each offer gets a receipt,
 * then `ready` (or, as an older loam does, the stream ends after the receipt).
 */
async function executor(reuse: boolean) {
  const node = await startTestNode("infer-streams-test");
  let opened = 0;
  await node.handle(INFER_PROTOCOL, async (stream) => {
    opened++;
    const channel = new InferChannel(stream);
    try {
      for (;;) {
        const frame = await channel.read();
        assert.equal(frame.kind, "offer");
        await channel.write("receipt", frame.bytes);
        if (!reuse) return await channel.close();
        await channel.write("ready", new Uint8Array());
      }
    } catch {
      // the entry side ended the stream
    }
  });
  return { node, opened: () => opened };
}

/** Runs `jobs` jobs one after another from `entry`'s pool to `peer`, as the router does. */
async function runJobs(spares: SpareStreams, peer: string, jobs: number) {
  for (let i = 0; i < jobs; i++) {
    const channel = await spares.take(peer, AbortSignal.timeout(5_000));
    await channel.write("offer", new TextEncoder().encode(`job ${i}`));
    const receipt = await channel.read(AbortSignal.timeout(5_000));
    assert.equal(new TextDecoder().decode(receipt.bytes), `job ${i}`);
    spares.keep(peer, channel);
    spares.replenish(peer);
    await sleep(100); // the next client's request, long after the executor's `ready`
  }
}

for (const reuse of [true, false]) {
  Deno.test({
    name: reuse
      ? "infer streams: one stream carries job after job while the executor says ready"
      : "infer streams: an executor that ends the stream after its receipt gets a new one per job",
    // libp2p leaves timers running after stop()
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      const holder = await executor(reuse);
      const entry = await startTestNode("infer-streams-test");
      try {
        await entry.dial(holder.node.getMultiaddrs()[0]!);
        const spares = new SpareStreams(entry);
        await runJobs(spares, holder.node.peerId.toString(), 5);
        // reused: the first stream only; not: one per job, each next one opened after a job
        // ended (replenish), so no job waits for a negotiation but the first
        if (reuse) assert.equal(holder.opened(), 1);
        else assert.ok(holder.opened() >= 5, `${holder.opened()} streams for 5 jobs`);
      } finally {
        await entry.stop();
        await holder.node.stop();
      }
    },
  });
}
