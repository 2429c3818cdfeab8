/**
 * `deno task bench [fetch|mesh|deploy|infer|restart|registry|build]`: loam's measured figures next to a baseline measured in the
 * same run, printed as Markdown tables of ratios. Needs about 2.5 GiB free in the temp dir.
 * @module
 */
import { benchFetch } from "./bench_fetch.ts";
import { benchMesh } from "./bench_mesh.ts";
import { benchDeploy } from "./bench_deploy.ts";
import { benchInfer } from "./bench_infer.ts";
import { benchRestart } from "./bench_restart.ts";
import { benchRegistry } from "./bench_registry.ts";
import { benchBuild } from "./bench_build.ts";
import { printTable } from "./bench_util.ts";

const which = Deno.args[0] ?? "all";
if (!["all", "fetch", "mesh", "deploy", "infer", "restart", "registry", "build"].includes(which)) {
  console.error("usage: deno task bench [fetch|mesh|deploy|infer|restart|registry|build]");
  Deno.exit(2);
}
const dir = await Deno.makeTempDir({ prefix: "loam-bench-" });
await Deno.chmod(dir, 0o711); // deployed programs run as workloads.user (as root) and must reach their dir
try {
  const target = Deno.build.target;
  if (which === "all" || which === "fetch") {
    printTable(
      `fetch (medians of 3 interleaved rounds, ${target})`,
      await benchFetch(`${dir}/fetch`),
    );
  }
  if (which === "all" || which === "mesh") {
    printTable(`mesh (${target})`, await benchMesh(`${dir}/mesh`));
  }
  if (which === "all" || which === "deploy") {
    printTable(`deploy (${target})`, await benchDeploy(`${dir}/deploy`));
  }
  if (which === "all" || which === "infer") {
    printTable(
      `inference (medians of 4 interleaved rounds, ${target})`,
      await benchInfer(`${dir}/infer`),
    );
  }
  if (which === "all" || which === "restart") {
    printTable(`recovery (medians of 3 rounds, ${target})`, await benchRestart(`${dir}/restart`));
  }
  if (which === "all" || which === "registry") {
    printTable(`registry (medians of 3 rounds, ${target})`, await benchRegistry(`${dir}/registry`));
  }
  if (which === "all" || which === "build") {
    printTable(`shipped file (medians of 3 rounds, ${target})`, await benchBuild(`${dir}/build`));
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}
Deno.exit(0); // libp2p leaves timers behind after stop(); the figures are printed
