/**
 * systemd for real: a Debian root built with debootstrap (cached between runs) booted in a
 * privileged podman container, the shipped file installed in it with `loam install`, then the
 * unit's promises checked: READY, a kill -9 restart, the watchdog, a native workload under the
 * unit's hardening, a self-update (exit 75, restarted into the new version, confirmed), and an
 * uninstall that leaves only the data. Skips with the reason where
 * podman, debootstrap or root are missing.
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { podman, type PodmanEnv, podmanEnv } from "../fixtures/container_image.ts";
import { shippedFile } from "../fixtures/shipped_file.ts";
import { sleep } from "../../src/system/sleep.ts";

/** The version the self-update step installs (a second build of this tree). */
const V2 = "99.2.0";

const CACHE = join(
  Deno.env.get("XDG_CACHE_HOME") ?? join(Deno.env.get("HOME") ?? "/root", ".cache"),
  "loam-build",
  "systemd-root-bookworm",
);

async function sh(script: string): Promise<{ ok: boolean; out: string }> {
  const res = await new Deno.Command("sh", {
    args: ["-c", script],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const text = new TextDecoder();
  return { ok: res.success, out: text.decode(res.stdout) + text.decode(res.stderr) };
}

const skipReason = Deno.uid() !== 0
  ? "needs root for a privileged container"
  : !(await sh("command -v podman && command -v debootstrap")).ok
  ? "podman or debootstrap is missing (apt-get install podman debootstrap)"
  : undefined;
if (skipReason) console.log(`SKIP systemd boot test: ${skipReason}`);

/** The bookworm root with systemd and curl: built once (~50 s), then reused. */
async function systemdRoot(): Promise<string> {
  if ((await sh(`test -x '${CACHE}/sbin/init'`)).ok) return CACHE;
  const work = `${CACHE}.partial-${Deno.pid}`;
  const built = await sh(
    `rm -rf '${work}' && debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,curl,procps ` +
      `bookworm '${work}' http://deb.debian.org/debian && rm -rf '${CACHE}' && mv '${work}' '${CACHE}'`,
  );
  if (!built.ok) throw new Error(`debootstrap failed:\n${built.out.slice(-2000)}`);
  return CACHE;
}

Deno.test({
  name:
    "installed under a real systemd: READY, restarts after kill -9 and a hang, native workloads, a self-update, uninstall",
  ignore: skipReason !== undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "loam-systemd-" });
    const pm: PodmanEnv = await podmanEnv(join(dir, "podman"));
    const name = `loam-systemd-${Deno.pid}`;
    const exec = async (script: string) => {
      const res = await podman(pm, ["exec", name, "sh", "-c", script]);
      return { ok: res.code === 0, out: res.stdout + res.stderr };
    };
    /** Polls a shell condition inside the container for up to `seconds`. */
    const until = async (what: string, script: string, seconds: number) => {
      for (let i = 0; i < seconds * 2; i++) {
        if ((await exec(script)).ok) return;
        await sleep(500);
      }
      const log = await exec("journalctl -u loam --no-pager | tail -20");
      throw new Error(`timed out waiting for ${what}\n${log.out}`);
    };
    const mainPid = async () => (await exec("systemctl show -p MainPID --value loam")).out.trim();
    try {
      const [root, file, v2] = await Promise.all([systemdRoot(), shippedFile(), shippedFile(V2)]);
      const started = await podman(pm, [
        "run",
        "-d",
        "--name",
        name,
        "--privileged",
        "--systemd=always",
        "--rootfs",
        `${root}:O`, // an overlay: the cached root stays as built
        "/sbin/init",
      ]);
      assert.equal(started.code, 0, started.stderr);
      await until(
        "systemd to boot",
        "systemctl is-system-running | grep -Eq 'running|degraded'",
        60,
      );
      assert.equal((await podman(pm, ["cp", file, `${name}:/root/loam-x86_64-linux`])).code, 0);

      const install = await exec("sh /root/loam-x86_64-linux install --watchdog-seconds 6");
      assert.ok(install.ok, install.out);
      await until("the unit to be active (notify READY)", "systemctl is-active loam", 60);
      assert.match(
        (await exec("readlink /usr/local/bin/loam")).out,
        /\/var\/lib\/loam\/bin\/current\/loam/,
      );
      const live = await exec("curl -sf 127.0.0.1:7411/livez");
      assert.ok(live.ok && live.out.includes("ok"), live.out);
      const token = "$(cat /var/lib/loam/api/admin.token)";
      const status = await exec(
        `curl -sf -H "Authorization: Bearer ${token}" 127.0.0.1:7411/v1/status`,
      );
      assert.ok(status.ok, status.out);

      // a native program, run as nobody under the unit's hardening
      const program = "#!/bin/sh\\necho started as $(id -u)\\nexec sleep 600\\n";
      const deployed = await exec(`
        printf '${program}' > /root/prog
        H=$(sha256sum /root/prog | cut -d' ' -f1); S=$(wc -c < /root/prog)
        cp /root/prog /var/lib/loam/blobs/sha256/$H && chmod 444 /var/lib/loam/blobs/sha256/$H
        curl -sf -X POST -H "Authorization: Bearer ${token}" 127.0.0.1:7411/v1/deployments -d \\
          "{\\"directive_id\\":\\"prog\\",\\"scope\\":{\\"type\\":\\"broadcast\\"},\\"artifact\\":{\\"blob_hash\\":\\"sha256:$H\\",\\"size_bytes\\":$S,\\"artifact_type\\":{\\"type\\":\\"native_binary\\",\\"arch\\":\\"x86_64\\"}}}"`);
      assert.ok(deployed.ok, deployed.out);
      await until(
        "the program to run as nobody",
        `curl -sf -H "Authorization: Bearer ${token}" 127.0.0.1:7411/v1/instances/bin-prog/logs | grep -q 'started as 65534'`,
        30,
      );
      // the unit's /proc hardening still lets the agent see its workload's CPU and memory
      const usage = await exec(
        `curl -sf -H "Authorization: Bearer ${token}" 127.0.0.1:7411/v1/instances/bin-prog`,
      );
      assert.match(usage.out, /"memory_bytes": [1-9]\d*/, usage.out);
      assert.match(usage.out, /"cpu_seconds": \d/, usage.out);
      // the program exec'd sleep: only its environment still says whose it is
      const programPid = (await exec("pgrep -x sleep")).out.trim();
      assert.match(programPid, /^\d+$/, "one program running");
      /** The program is the one from the start, adopted by the agent running now. */
      const stillAdopted = async (after: string) => {
        assert.equal(
          (await exec("pgrep -x sleep")).out.trim(),
          programPid,
          `${after}: same program`,
        );
        await until(
          `the agent to adopt the program after ${after}`,
          `curl -sf -H "Authorization: Bearer ${token}" 127.0.0.1:7411/v1/instances/bin-prog | grep -q '"pid": ${programPid}'`,
          30,
        );
      };

      const first = await mainPid();
      await exec(`kill -9 ${first}`);
      await until(
        "a restart after kill -9",
        `[ "$(systemctl show -p MainPID --value loam)" != "${first}" ] && systemctl is-active loam`,
        30,
      );
      await stillAdopted("kill -9");
      const second = await mainPid();
      await exec(`kill -STOP ${second}`);
      await until(
        "the watchdog to restart a hung agent",
        `[ "$(systemctl show -p MainPID --value loam)" != "${second}" ] && systemctl is-active loam`,
        40,
      );
      assert.match((await exec("journalctl -u loam --no-pager")).out, /Watchdog timeout/);
      await stillAdopted("the watchdog restart");

      // a self-update under systemd: the agent exits 75 and the unit starts current/loam again
      assert.equal((await podman(pm, ["cp", v2, `${name}:/root/loam-v2`])).code, 0);
      const before = await mainPid();
      const updated = await exec(`
        H=$(sha256sum /root/loam-v2 | cut -d' ' -f1); S=$(wc -c < /root/loam-v2)
        cp /root/loam-v2 /var/lib/loam/blobs/sha256/$H && chmod 444 /var/lib/loam/blobs/sha256/$H
        curl -s -w ' HTTP %{http_code}' -X POST -H "Authorization: Bearer ${token}" \
          127.0.0.1:7411/v1/deployments -d \
          "{\\"directive_id\\":\\"up-v2\\",\\"scope\\":{\\"type\\":\\"capability\\",\\"arch\\":\\"x86_64\\"},\\"artifact\\":{\\"blob_hash\\":\\"sha256:$H\\",\\"size_bytes\\":$S,\\"artifact_type\\":{\\"type\\":\\"loam_agent\\",\\"version\\":\\"${V2}\\"}}}"`);
      assert.match(updated.out, /HTTP 202$/, updated.out);
      await until(
        `loam ${V2} to run as the service, confirmed`,
        `curl -sf -H "Authorization: Bearer ${token}" 127.0.0.1:7411/v1/deployments/up-v2 | grep -q '"state": "active"' && curl -sf -H "Authorization: Bearer ${token}" 127.0.0.1:7411/v1/status | grep -q '"version": "${V2}"'`,
        120,
      );
      assert.notEqual(await mainPid(), before);
      assert.equal((await exec("readlink /var/lib/loam/bin/current")).out.trim(), V2);
      assert.match((await exec("systemctl is-active loam")).out, /^active/);
      await stillAdopted("the self-update");

      const removed = await exec("loam uninstall");
      assert.ok(removed.ok, removed.out);
      // a stop is the agent's to carry out: its programs go with it
      assert.equal(
        (await exec("pgrep -x sleep")).out.trim(),
        "",
        "no program left after uninstall",
      );
      const left = (await exec(
        "ls /var/lib/loam; ls /usr/local/bin/loam /etc/systemd/system/loam.service 2>&1",
      )).out;
      assert.doesNotMatch(left, /^(bin|runtime)$/m);
      assert.match(left, /identity\.key/);
      assert.match(left, /No such file or directory.*\n.*No such file or directory/);
    } finally {
      await podman(pm, ["rm", "-f", "-t", "0", name]);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
