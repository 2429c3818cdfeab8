import assert from "node:assert/strict";
import { type Counter, Registry } from "prom-client";
import { startTestNode } from "../../tests/fixtures/mesh_node.ts";
import { openPeerBlob, serveBlobs } from "./blob_protocol.ts";
import { BlobStore } from "../blobs/store.ts";
import { createSha256 } from "../blobs/digest.ts";
import { createLogger } from "../system/logger.ts";
import { writeRandomFile } from "../../tests/fixtures/blob_server.ts";
import { sleep } from "../system/sleep.ts";

const SIZE = 96 * 1024 * 1024;
const quiet = createLogger({ level: "error", format: "json", write: () => {} });

async function servedBytes(registry: Registry): Promise<number> {
  const counter = registry.getSingleMetric("loam_blob_bytes_served_total") as Counter;
  return (await counter.get()).values[0]?.value ?? 0;
}

Deno.test({
  name: "a reader that stalls holds the sender back, then gets every byte intact",
  // libp2p leaves timers running after stop()
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "loam-pacing-" });
    const [holder, reader] = [
      await startTestNode("pacing-test"),
      await startTestNode("pacing-test"),
    ];
    try {
      await Deno.mkdir(`${dir}/sha256`);
      const hex = await writeRandomFile(`${dir}/blob`, SIZE);
      await Deno.rename(`${dir}/blob`, `${dir}/sha256/${hex}`);
      const registry = new Registry();
      await serveBlobs(holder, new BlobStore(dir), registry, quiet, { maxStreamsPerPeer: 8 });
      await reader.dial(holder.getMultiaddrs()[0]!);

      const signal = AbortSignal.timeout(60_000);
      const opened = await openPeerBlob(reader, holder.peerId.toString(), hex, 0, signal);
      const chunks = opened.chunks[Symbol.asyncIterator]();
      const hash = createSha256();
      let received = 0;
      const take = async (bytes: number, pause = 0) => {
        const goal = received + bytes;
        while (received < goal) {
          if (pause > 0) await sleep(pause);
          const next = await chunks.next();
          if (next.done) break;
          hash.update(next.value);
          received += next.value.length;
        }
      };
      await take(8 * 1024 * 1024);
      // a first stall and resume: the sender waits for a drain and gets it (libp2p's own
      // onDrain() only ever waits for that first one)
      await sleep(300);
      await take(24 * 1024 * 1024);

      // stalled for 1.5 s: the holder may run ahead by the yamux window, the reader's read-ahead
      // and socket buffers, not by the rest of the blob (it reads that from disk in far less)
      await sleep(1500);
      const ahead = await servedBytes(registry) - received;
      assert.ok(ahead < 40 * 1024 * 1024, `holder ran ${ahead} bytes ahead of a stalled reader`);

      // a slow reader pauses and resumes the stream over and over, each time with bytes waiting
      // in it: none of that may overflow its read buffer (the stream would be reset)
      await take(24 * 1024 * 1024, 1);
      await take(SIZE);
      assert.equal(received, SIZE);
      assert.equal(hash.digest("hex"), hex);
      assert.equal(await servedBytes(registry), SIZE);
    } finally {
      await Promise.all([holder.stop(), reader.stop()]);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a peer past mesh.limits.blob_streams_per_peer is told busy (transient) and counted",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "loam-busy-" });
    const [holder, reader] = [await startTestNode("busy-test"), await startTestNode("busy-test")];
    try {
      await Deno.mkdir(`${dir}/sha256`);
      const hex = await writeRandomFile(`${dir}/blob`, 8 * 1024 * 1024);
      await Deno.rename(`${dir}/blob`, `${dir}/sha256/${hex}`);
      const registry = new Registry();
      await serveBlobs(holder, new BlobStore(dir), registry, quiet, { maxStreamsPerPeer: 1 });
      await reader.dial(holder.getMultiaddrs()[0]!);
      const signal = AbortSignal.timeout(30_000);
      const holderId = holder.peerId.toString();
      const first = await openPeerBlob(reader, holderId, hex, 0, signal);
      await assert.rejects(
        openPeerBlob(reader, holderId, hex, 0, signal),
        (err: Error & { kind?: string }) => {
          assert.match(err.message, /busy: too many blob transfers open from this peer/);
          assert.equal(err.kind, "transient");
          return true;
        },
      );
      const refused = registry.getSingleMetric("loam_blob_streams_refused_total") as Counter;
      assert.equal((await refused.get()).values[0]?.value, 1);
      let got = 0;
      for await (const chunk of first.chunks) got += chunk.length;
      assert.equal(got, 8 * 1024 * 1024, "the first transfer is unharmed");
      // once it is done, the peer may open another
      const again = await openPeerBlob(reader, holderId, hex, 0, signal);
      for await (const _ of again.chunks) { /* drain */ }
    } finally {
      await Promise.all([holder.stop(), reader.stop()]);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
