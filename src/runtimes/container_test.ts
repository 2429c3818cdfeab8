import assert from "node:assert/strict";
import { join } from "node:path";
import { ContainerAdapter } from "./container.ts";
import { humanBytes } from "./container_cli.ts";
import { DeploymentDirectiveSchema } from "../protocol/directive.ts";
import { createLogger } from "../system/logger.ts";
import { sha256Hex } from "../../tests/fixtures/blob_server.ts";
import {
  buildWebImageArchive,
  podman,
  podmanAvailable,
  podmanEnv,
} from "../../tests/fixtures/container_image.ts";
import { sleep } from "../system/sleep.ts";

const skip = await podmanAvailable();
if (skip) console.warn(`SKIP container adapter tests: ${skip}`);

const quiet = createLogger({ level: "error", format: "json", write: () => {} });

Deno.test({
  name:
    "an aborted container activation removes its container and image and rejects with the reason",
  ignore: skip !== undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "loam-test-" });
    const pm = await podmanEnv(join(dir, "podman"));
    // the adapter's CLI calls inherit this process's environment (the store's containers.conf)
    const saved = Object.keys(pm.env).map((k) => [k, Deno.env.get(k)] as const);
    for (const [k, v] of Object.entries(pm.env)) Deno.env.set(k, v);
    try {
      const { archive } = await buildWebImageArchive(dir);
      const bytes = await Deno.readFile(archive);
      const adapter = new ContainerAdapter(
        {
          agentId: "12D3KooWTestAgent",
          publishAddress: "127.0.0.1",
          globalArgs: { podman: pm.flags, docker: [], containerd: [] },
          stopGraceSeconds: 0,
          checkIntervalMs: 60_000,
        },
        quiet,
        () => {},
      );
      // a health check that never passes keeps the activation waiting until it is aborted
      const directive = DeploymentDirectiveSchema.parse({
        directive_id: "abort:1",
        issued_at: new Date().toISOString(),
        issuer_node_id: "test",
        scope: { type: "broadcast" },
        artifact: {
          blob_hash: `sha256:${sha256Hex(bytes)}`,
          size_bytes: bytes.length,
          artifact_type: { type: "container", runtime: "podman" },
        },
        config: { health: { command: ["cat", "/never"], timeout_seconds: 30 } },
      });
      const controller = new AbortController();
      const activation = adapter.activate(directive, archive, controller.signal);
      activation.catch(() => {}); // awaited below, once aborted

      const deadline = Date.now() + 60_000;
      let running: { Names: string[] }[] = [];
      while (running.length === 0) {
        assert.ok(Date.now() < deadline, "the container never started");
        await sleep(250);
        const ps = await podman(pm, ["ps", "--format", "json"]);
        running = JSON.parse(ps.stdout || "[]");
      }
      // `:` may not be in a container name; the hex tag keeps names apart all the same
      assert.match(running[0]!.Names[0]!, /^loam-ctr-abort_1-[0-9a-f]{8}$/);

      const reason = new Error("cancelled while activating");
      controller.abort(reason);
      await assert.rejects(activation, (err) => err === reason);
      assert.deepEqual(JSON.parse((await podman(pm, ["ps", "-a", "--format", "json"])).stdout), []);
      const images = await podman(pm, ["images", "--format", "json"]);
      assert.deepEqual(JSON.parse(images.stdout), [], "the image it loaded is removed");
      assert.deepEqual(adapter.list(), []);
    } finally {
      await podman(pm, ["rm", "-af", "-t", "0"]);
      for (const [k, v] of saved) {
        if (v === undefined) Deno.env.delete(k);
        else Deno.env.set(k, v);
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("docker's stats sizes in bytes; anything else is not a size", () => {
  assert.equal(humanBytes("745.5kB"), 745_500);
  assert.equal(humanBytes("1.5MiB"), 1_572_864);
  assert.equal(humanBytes("2GB"), 2e9);
  assert.equal(humanBytes("0B"), 0);
  assert.equal(humanBytes("--"), undefined);
  assert.equal(humanBytes("5XB"), undefined);
});
