/**
 * The web console in a real browser (headless Chromium through playwright-core): logged in with
 * the URL `loam console` prints, it shows the node, a deployment turning active, a log line as
 * it arrives, a streamed chat with the GGUF model and the fleet; a `status:read` token sees no
 * buttons. Screenshots of each view go to dist/console-screenshots/.
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { runLoam, startAgent, tempDir } from "./harness.ts";
import { eventually, peersOf } from "./mesh_helpers.ts";
import { postArtifact, tinyLlmAgent } from "./deploy_helpers.ts";
import { startBlobServer } from "../fixtures/blob_server.ts";
import { browserSkipReason, launchBrowser } from "../fixtures/browser.ts";

const skipReason = await browserSkipReason();
if (skipReason) console.log(`SKIP console tests: ${skipReason}`);

const SHOTS = join(import.meta.dirname!, "..", "..", "dist", "console-screenshots");

/** A program that says hello, then counts (one line every 0.3 s, for a minute at most). */
const TICKER = new TextEncoder().encode(
  "#!/bin/sh\necho hello from the console test\ni=0\n" +
    "while [ $i -lt 200 ]; do echo tick $i; sleep 0.3; i=$((i + 1)); done\n",
);

/** Saves a screenshot of the page as `<name>.png`; returns its path. */
async function shoot(page: Page, name: string): Promise<string> {
  const path = join(SHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

Deno.test({
  name: "the console in Chromium: login by loam console's URL, node, a deployment going active, " +
    "live logs, a streamed chat, the fleet; a status:read token gets no buttons",
  ignore: skipReason !== undefined,
  async fn() {
    await Deno.mkdir(SHOTS, { recursive: true });
    await using dir = await tempDir();
    await using served = await tinyLlmAgent(join(dir.path, "a"));
    const { agent } = served;
    const other = await startAgent(join(dir.path, "b"), ["--bootstrap", agent.meshAddrs[0]!]);
    await using http = startBlobServer({ "/ticker": { body: TICKER } });
    const browser = await launchBrowser();
    const problems: string[] = [];
    let current: Page | undefined;
    try {
      const status = await (await agent.request("/v1/status", { token: agent.adminToken() }))
        .json();
      const login = await runLoam(["console", "--data-dir", agent.dataDir]);
      assert.equal(login.code, 0, login.stderr);
      const url = login.stdout.trim();
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/\?code=[\w-]+$/);

      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      current = page;
      page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
      page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
      const opened = performance.now();
      await page.goto(url);
      await page.locator("[data-field=node_id]").filter({ hasText: status.node_id }).waitFor();
      const loginMs = performance.now() - opened;
      // the code left the address bar, and the session token is the page's, not the admin's
      assert.equal(new URL(page.url()).search, "");
      assert.match(await page.locator("#whoami").innerText(), /console-[0-9a-f]{8}/);
      const shots = [await shoot(page, "node")];

      const posted = await postArtifact(agent, "ticker", TICKER, http.url("/ticker"), {
        type: "native_binary",
        arch: Deno.build.arch,
      });
      assert.equal(posted.status, 202);
      await page.goto(`${agent.apiUrl}/#deployments`);
      const row = page.locator("#view-deployments tr[data-id=ticker]");
      await row.locator(".state", { hasText: "active" }).waitFor({ timeout: 30_000 });
      assert.equal(await row.locator("button[data-action=delete]").count(), 1);
      // one that waits for a person: ready, with an Activate button that starts it
      const held = await postArtifact(agent, "held", TICKER, http.url("/ticker"), {
        type: "native_binary",
        arch: Deno.build.arch,
      }, { options: { auto_activate: false } });
      assert.equal(held.status, 202);
      const heldRow = page.locator("#view-deployments tr[data-id=held]");
      await heldRow.locator(".state", { hasText: "ready" }).waitFor({ timeout: 30_000 });
      shots.push(await shoot(page, "deployments"));
      await heldRow.locator("button[data-action=activate]").click();
      await heldRow.locator(".state", { hasText: "active" }).waitFor({ timeout: 30_000 });

      await page.goto(`${agent.apiUrl}/#instances`);
      await page.locator("#view-instances tr[data-id=bin-ticker] button[data-action=logs]").click();
      await page.locator("#logs div", { hasText: "hello from the console test" }).waitFor();
      // a line the program writes after the page opened its log arrives by itself
      const shown = await page.locator("#logs div").count();
      await page.locator("#logs div").nth(shown).waitFor({ timeout: 10_000 });
      shots.push(await shoot(page, "instances"));

      await page.goto(`${agent.apiUrl}/#models`);
      await page.locator("#view-models tr[data-id=llm-llm-1]").waitFor();
      await page.locator("#chat-input").fill("hello there");
      await page.locator("#chat-form button[type=submit]").click();
      await page.locator("#chat-out", { hasText: /\S/ }).waitFor({ timeout: 30_000 });
      shots.push(await shoot(page, "models"));

      await eventually("b joined", async () => (await peersOf(agent)).length >= 1);
      await page.goto(`${agent.apiUrl}/#fleet`);
      const otherStatus = await (await other.request("/v1/status", { token: other.adminToken() }))
        .json();
      await page.locator(`#view-fleet tr[data-id="${otherStatus.peer_id}"] .state`, {
        hasText: "online",
      })
        .waitFor({ timeout: 30_000 });
      await page.locator(`#view-fleet tr[data-id="${status.peer_id}"]`, { hasText: "ticker" })
        .waitFor();
      shots.push(await shoot(page, "fleet"));
      // the same list for the terminal
      const fleet = await runLoam(["fleet", "--data-dir", agent.dataDir]);
      assert.equal(fleet.code, 0, fleet.stderr);
      assert.match(fleet.stdout, /\(this node\)\s+\w{8}\s+yes\s+-\s+x86_64.*ticker:active/);
      assert.match(fleet.stdout, new RegExp(`${otherStatus.peer_id.slice(-8)}\\s+yes`));

      // at a phone's width nothing runs off the side: wide tables scroll in their own box
      await page.setViewportSize({ width: 390, height: 844 });
      await page.goto(`${agent.apiUrl}/#deployments`);
      await row.waitFor();
      const overflow = await page.evaluate(() => {
        // deno-lint-ignore no-explicit-any
        const root = (globalThis as any).document.documentElement;
        return root.scrollWidth - root.clientWidth;
      }) as number;
      assert.ok(overflow <= 0, `the page is ${overflow} px wider than a phone`);
      shots.push(await shoot(page, "deployments-phone"));

      // a token that may only look: the same rows, no buttons
      const made = await runLoam([
        "token",
        "create",
        "--data-dir",
        agent.dataDir,
        "--scopes",
        "status:read",
        "--name",
        "viewer",
      ]);
      assert.equal(made.code, 0, made.stderr);
      const viewer = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      await viewer.goto(`${agent.apiUrl}/#deployments`);
      await viewer.locator("#login-token").fill(made.stdout.trim());
      await viewer.locator("#login-form button[type=submit]").click();
      const seenByViewer = viewer.locator("#view-deployments tr[data-id=ticker]");
      await seenByViewer.locator(".state", { hasText: "active" }).waitFor();
      assert.equal(await viewer.locator("button[data-action=delete]").count(), 0);
      assert.equal(await viewer.locator("button[data-action=activate]").count(), 0);
      shots.push(await shoot(viewer, "deployments-status-read"));

      // the admin's delete button works, and the page follows the deployment away
      page.on("dialog", (dialog) => void dialog.accept());
      await page.setViewportSize({ width: 1280, height: 800 });
      await row.locator("button[data-action=delete]").click();
      await eventually("ticker deleted", async () => {
        const res = await agent.request("/v1/deployments/ticker", { token: agent.adminToken() });
        const body = await res.json();
        return res.status === 404 || body.state !== "active" || undefined;
      });

      assert.deepEqual(problems, [], problems.join("\n"));
      console.log(`  login URL opened → node id shown: ${loginMs.toFixed(0)} ms`);
      console.log(`  screenshots:\n${shots.map((s) => `    ${s}`).join("\n")}`);
    } catch (err) {
      if (current) {
        console.log(`failed at ${await shoot(current, "failure")}:\n${problems.join("\n")}`);
      }
      throw err;
    } finally {
      await browser.close();
      await other.stop();
    }
  },
});

Deno.test({
  name:
    "the console's headers: a CSP without inline scripts, no CORS; a used or unknown code is refused",
  async fn() {
    await using dir = await tempDir();
    const agent = await startAgent(dir.path);
    try {
      const page = await fetch(`${agent.apiUrl}/`, { headers: { origin: "http://evil.example" } });
      const html = await page.text();
      assert.match(page.headers.get("content-security-policy")!, /script-src 'self'/);
      assert.doesNotMatch(page.headers.get("content-security-policy")!, /unsafe-inline/);
      assert.equal(page.headers.get("access-control-allow-origin"), null);
      assert.doesNotMatch(html, /<script>|<script [^>]*>[^<]/, "no inline script");
      assert.doesNotMatch(html, /https?:\/\//, "nothing loaded from elsewhere");
      const preflight = await fetch(`${agent.apiUrl}/v1/status`, {
        method: "OPTIONS",
        headers: { origin: "http://evil.example", "access-control-request-method": "GET" },
      });
      await preflight.body?.cancel();
      assert.equal(preflight.headers.get("access-control-allow-origin"), null);

      const login = await runLoam(["console", "--data-dir", dir.path, "--json"]);
      const { code } = JSON.parse(login.stdout);
      const trade = () =>
        fetch(`${agent.apiUrl}/v1/console/session`, {
          method: "POST",
          body: JSON.stringify({ code }),
        });
      const first = await trade();
      const session = await first.json();
      assert.equal(first.status, 201);
      assert.ok(Date.parse(session.expires_at) > Date.now());
      const again = await trade();
      assert.equal(again.status, 401);
      assert.match((await again.json()).error.message, /unknown, used or expired/);
      const me = await (await agent.request("/v1/status", { token: session.token })).json();
      assert.equal(me.token.expires_at, session.expires_at);
    } finally {
      await agent.stop();
    }
  },
});
