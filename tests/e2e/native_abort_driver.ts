/**
 * Runs `NativeBinaryAdapter.activate` in a process of its own, with the agent's permissions (the
 * test runner may not spawn the programs the adapter installs), and aborts it after a while:
 * `deno run <agent flags> native_abort_driver.ts <dir> <abort after ms>` activates a long-running
 * program from `<dir>/instances` and prints `{rejected, same_reason, ms, listed, dir_left}`.
 * @module
 */
import { NativeBinaryAdapter } from "../../src/runtimes/native_binary.ts";
import { DeploymentDirectiveSchema } from "../../src/protocol/directive.ts";
import { createLogger } from "../../src/system/logger.ts";
import { sha256Hex } from "../fixtures/blob_server.ts";

const [dir, after] = Deno.args;
if (!dir || after === undefined) throw new Error("usage: native_abort_driver.ts <dir> <ms>");
const program = new TextEncoder().encode(
  "#!/bin/sh\necho up\ni=0\nwhile [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done\n",
);
const blob = `${dir}/blob`;
await Deno.writeFile(blob, program, { mode: 0o444 });
const directive = DeploymentDirectiveSchema.parse({
  directive_id: "abort",
  issued_at: new Date().toISOString(),
  issuer_node_id: "test",
  scope: { type: "broadcast" },
  artifact: {
    blob_hash: `sha256:${sha256Hex(program)}`,
    size_bytes: program.length,
    artifact_type: { type: "native_binary", arch: Deno.build.arch, args: [] },
  },
});
const adapter = new NativeBinaryAdapter(
  `${dir}/instances`,
  createLogger({ level: "info", format: "json" }),
  () => {},
);
const reason = new Error("cancelled while activating");
const controller = new AbortController();
if (Number(after) === 0) controller.abort(reason);
else setTimeout(() => controller.abort(reason), Number(after));
const started = performance.now();
const outcome = await adapter.activate(directive, blob, controller.signal).then(
  () => undefined,
  (err: Error) => err,
);
const ms = performance.now() - started;
await adapter.stopAll({ handOver: false }); // when activate ignored the signal
console.log(JSON.stringify({
  rejected: outcome?.message ?? null,
  same_reason: outcome === reason,
  ms,
  listed: adapter.list().length,
  dir_left: await Deno.stat(`${dir}/instances/bin-abort`).then(() => true, () => false),
}));
