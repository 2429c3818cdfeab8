import assert from "node:assert/strict";
import { z } from "zod";
import { startTestNode } from "../../tests/fixtures/mesh_node.ts";
import { JsonMessages } from "./json_messages.ts";

const PROTOCOL = "/loam/json-messages-test/1";
const Request = z.strictObject({ ids: z.array(z.string().regex(/^[a-z]+$/)).max(4) });

Deno.test({
  name:
    "JSON messages: a bad request is refused naming its field; other failures say nothing of why",
  // libp2p leaves timers running after stop()
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestNode("json-messages-test");
    const client = await startTestNode("json-messages-test");
    try {
      await server.handle(PROTOCOL, async (stream) => {
        const messages = new JsonMessages(stream, 1024, AbortSignal.timeout(5_000));
        try {
          const { ids } = await messages.receive(Request);
          if (ids.includes("boom")) throw new Error("EACCES: /var/lib/loam/directives/x.json");
          await messages.send({ ok: ids.length });
          await stream.close();
        } catch (err) {
          await messages.refuse(err);
        }
      });
      await client.dial(server.getMultiaddrs()[0]!);
      const ask = async (request: unknown) => {
        const stream = await client.dialProtocol(server.peerId, PROTOCOL);
        const messages = new JsonMessages(stream, 1024, AbortSignal.timeout(5_000));
        await messages.send(request);
        return await messages.receive(z.strictObject({ ok: z.number() })).then(
          (answer) => answer.ok,
          (err: Error) => err.message,
        );
      };
      assert.equal(await ask({ ids: ["a", "b"] }), 2);
      assert.match(String(await ask({ ids: ["../x"] })), /^the peer refused: ids\.0: /);
      assert.equal(
        await ask({ ids: ["boom"] }),
        "the peer refused: the request failed on this node",
      );
      assert.match(
        String(await ask({ ids: ["a".repeat(2000)] })),
        /^the peer refused: Message length too long/,
      );
    } finally {
      await client.stop();
      await server.stop();
    }
  },
});
