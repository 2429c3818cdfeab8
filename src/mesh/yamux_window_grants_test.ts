import assert from "node:assert/strict";
import { yamux } from "@libp2p/yamux";
import { YamuxStream } from "@libp2p/yamux/stream";
import { createLibp2p } from "libp2p";
import { tcp } from "@libp2p/tcp";
import { noise } from "@chainsafe/libp2p-noise";
import type { MeshNode } from "./node.ts";
import { startTestNode } from "../../tests/fixtures/mesh_node.ts";
import { pacedChunks, sendPaced } from "./stream_pacing.ts";
import { sleep } from "../system/sleep.ts";

const PROTOCOL = "/loam-test/sink/1.0.0";
const MESSAGES = 300;
const MESSAGE_BYTES = 1024;

Deno.test({
  name: "yamux: a stream of small messages gets its window granted in batches, not per frame",
  // libp2p leaves timers running after stop()
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // count the window-update frames the test stream's sending end receives
    const prototype = YamuxStream.prototype as unknown as { handleWindowUpdate(f: unknown): void };
    const handle = prototype.handleWindowUpdate;
    let counted: unknown;
    let updates = 0;
    prototype.handleWindowUpdate = function (frame) {
      if (this === counted) updates++;
      handle.call(this, frame);
    };
    const [sender, receiver] = [
      await startTestNode("window-test"),
      await startTestNode("window-test"),
    ];
    try {
      let received = 0;
      let arrived = Promise.withResolvers<void>();
      const done = Promise.withResolvers<void>();
      await receiver.handle(PROTOCOL, async (stream) => {
        for await (const chunk of pacedChunks(stream, 1024 * 1024)) {
          received += chunk.length;
          arrived.resolve();
        }
        done.resolve();
      });
      const stream = await sender.dialProtocol(receiver.getMultiaddrs()[0]!, PROTOCOL);
      counted = stream;
      // one message in flight at a time, as gossip goes: each travels in a frame of its own
      for (let i = 0; i < MESSAGES; i++) {
        arrived = Promise.withResolvers<void>();
        await sendPaced(stream, new Uint8Array(MESSAGE_BYTES));
        await arrived.promise;
      }
      await stream.close();
      await done.promise;
      assert.equal(received, MESSAGES * MESSAGE_BYTES);
      // yamux 8 alone answers each of the 300 data frames; batched, one grant per 128 KiB
      assert.ok(updates < 10, `${updates} window updates for ${MESSAGES} frames`);
    } finally {
      prototype.handleWindowUpdate = handle;
      await Promise.all([sender.stop(), receiver.stop()]);
    }
  },
});

function defaultPeer() {
  return createLibp2p({
    addresses: { listen: ["/ip4/127.0.0.1/tcp/0"] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
  });
}

/**
 * Streams 2 MiB from `sender` to `receiver`, whose reader is slow and pauses the stream past
 * 64 KiB queued (so it stops granting window); fails if the transfer stalls for 20 s.
 */
async function streamTwoMiB(
  sender: Pick<MeshNode, "dialProtocol">,
  receiver: Pick<MeshNode, "handle" | "getMultiaddrs">,
): Promise<number> {
  let received = 0;
  const done = Promise.withResolvers<void>();
  await receiver.handle(PROTOCOL, async (stream) => {
    for await (const chunk of pacedChunks(stream, 64 * 1024)) {
      received += chunk.length;
      await sleep(2);
    }
    done.resolve();
  });
  const stream = await sender.dialProtocol(receiver.getMultiaddrs()[0]!, PROTOCOL);
  const send = async () => {
    for (let i = 0; i < 32; i++) await sendPaced(stream, new Uint8Array(64 * 1024));
    await stream.close();
    await done.promise;
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`stalled at ${received} bytes`)), 20_000);
  });
  await Promise.race([send(), stalled]).finally(() => clearTimeout(timer));
  return received;
}

Deno.test({
  name: "yamux: a peer with the default 256 KiB window and a loam node stream 2 MiB both ways",
  // libp2p leaves timers running after stop()
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const [loam, other] = [await startTestNode("window-test"), await defaultPeer()];
    try {
      // the default peer believes it may send 256 KiB: grants must come before that is used
      assert.equal(await streamTwoMiB(other, loam), 2 * 1024 * 1024);
      // and it grants no more than 256 KiB at first: the loam node must wait for its grants
      assert.equal(await streamTwoMiB(loam, other), 2 * 1024 * 1024);
    } finally {
      await Promise.all([loam.stop(), other.stop()]);
    }
  },
});
