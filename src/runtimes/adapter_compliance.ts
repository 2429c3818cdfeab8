/**
 * One suite of what the deployment engine relies on from every runtime adapter (js-libp2p's
 * interface-compliance-tests): activate, list, logs, resume after an agent restart, deactivate,
 * and the failure paths. Each adapter's test calls {@link adapterComplianceSuite} with a factory
 * of its own blobs.
 * @module
 */
import assert from "node:assert/strict";
import type { DeploymentDirective } from "../protocol/directive.ts";
import type { RuntimeAdapter } from "./adapter.ts";
import { eventually } from "../../tests/e2e/mesh_helpers.ts";

/** A directive and the verified blob it names. */
export interface ComplianceArtifact {
  directive: DeploymentDirective;
  blobPath: string;
}

/** The cases an adapter may skip, each with the reason printed. */
export type ComplianceCase = "aborted signal";

/** What one adapter's run of the suite works with, made fresh for it. */
export interface ComplianceSetup {
  /**
   * Builds the adapter; called again for the agent restart, so that the second one shares
   * nothing but the first one's instances dir (and whatever else is on disk).
   */
  adapter(): RuntimeAdapter;
  /** An artifact that activates; with `logLine`, a line its logs show once it runs. */
  good: ComplianceArtifact & { logLine?: string };
  /** An artifact whose activation fails with a message matching `error`. */
  bad: ComplianceArtifact & { error: RegExp };
  /** Cases this adapter does not pass yet, each with why. */
  skip?: Partial<Record<ComplianceCase, string>>;
  /** Removes what the setup made (its temp dir, a container store). */
  close(): Promise<void>;
}

/** States an instance record may be in, across adapters (see `InstanceView.state`). */
const SANE_STATES = ["running", "restarting", "exited", "killed", "loading", "loaded", "installed"];

/**
 * Registers one test, `<name> adapter complies with the RuntimeAdapter contract`, whose steps
 * run in order against one setup: a bad blob and an aborted signal reject and list nothing; a
 * good blob activates and is listed (and logs, where the adapter has logs); a fresh adapter
 * over the same instances dir reconciles and resumes it; deactivating removes it. With
 * `unavailable`, the test is skipped and the reason printed (a runtime missing here).
 */
export function adapterComplianceSuite(
  name: string,
  factory: () => Promise<ComplianceSetup>,
  unavailable?: string,
): void {
  if (unavailable) console.log(`SKIP ${name} adapter compliance: ${unavailable}`);
  Deno.test({
    name: `${name} adapter complies with the RuntimeAdapter contract`,
    ignore: unavailable !== undefined,
    async fn(t) {
      const setup = await factory();
      const first = setup.adapter();
      let second: RuntimeAdapter | undefined;
      try {
        await t.step(
          "a bad blob: activate rejects with a clear Error and lists nothing",
          async () => {
            const { directive, blobPath, error } = setup.bad;
            const err = await first.activate(directive, blobPath, new AbortController().signal)
              .then(() => undefined, (e: unknown) => e);
            assert.ok(err instanceof Error, `rejected with ${err}`);
            assert.match(err.message, error);
            assert.deepEqual(first.list(), []);
          },
        );

        const aborted = setup.skip?.["aborted signal"];
        if (aborted) console.log(`SKIP ${name}: aborted signal: ${aborted}`);
        await t.step({
          name: "an already-aborted signal: activate rejects with its reason, lists nothing",
          ignore: aborted !== undefined,
          async fn() {
            const { directive, blobPath } = setup.good;
            const reason = new Error("cancelled before it began");
            await assert.rejects(
              first.activate(directive, blobPath, AbortSignal.abort(reason)),
              (err) => err === reason,
            );
            assert.deepEqual(first.list(), []);
          },
        });

        const { directive, blobPath, logLine } = setup.good;
        let instanceId = "";
        await t.step("activate: the instance is listed with a sane state", async () => {
          const instance = await first.activate(directive, blobPath, new AbortController().signal);
          instanceId = instance.instance_id;
          assertListed(first, instanceId, directive);
        });

        if (first.logs) {
          const logs = first.logs.bind(first);
          await t.step("logs: the instance's output is there, and none of others", async () => {
            await eventually(`the logs of ${instanceId}`, async () => {
              const lines = await logs(instanceId);
              return Array.isArray(lines) && (!logLine || lines.some((l) => l.line === logLine));
            });
            assert.equal(await logs("no-such-instance"), undefined);
          });
        }

        await t.step("resume: a fresh adapter over the same dir adopts it again", async () => {
          await first.stopAll?.();
          second = setup.adapter();
          await second.reconcile?.([instanceId]);
          await second.resume(directive, instanceId, blobPath);
          assertListed(second, instanceId, directive);
        });

        await t.step("deactivate: the instance is gone from the list", async () => {
          await second!.deactivate(instanceId);
          assert.deepEqual(second!.list().map((i) => i.instance_id), []);
        });
      } finally {
        await second?.stopAll?.();
        await first.stopAll?.();
        await setup.close();
      }
    },
  });
}

/** `instanceId` is listed once, for `directive`, by this adapter, in a sane state. */
function assertListed(
  adapter: RuntimeAdapter,
  instanceId: string,
  directive: DeploymentDirective,
): void {
  const views = adapter.list().filter((v) => v.instance_id === instanceId);
  assert.equal(views.length, 1, `listed: ${JSON.stringify(adapter.list())}`);
  const view = views[0]!;
  assert.equal(view.directive_id, directive.directive_id);
  assert.equal(view.adapter, adapter.kind);
  assert.ok(SANE_STATES.includes(view.state), `state ${view.state}`);
}
