// The loam console: one page over the agent's own API, with the page's token in a Bearer header
// (never a cookie). No library, no inline script, nothing from elsewhere: it is embedded in the
// loam file and served by the agent it shows.

const TOKEN_KEY = "loam.console.token";
/** How often the open view is asked again (a 304 when nothing changed costs a header). */
const POLL_MS = 2000;
/** Samples the charts keep (2 minutes at POLL_MS). */
const HISTORY = 60;
/** Log lines shown in the followed log. */
const LOG_LINES = 300;

const VIEWS = ["node", "deployments", "instances", "models", "fleet"];

const state = {
  /** @type {string | null} */
  token: null,
  /** @type {{ name: string, scopes: string[], expires_at?: string } | null} */
  me: null,
  view: "node",
  /** @type {Map<string, { etag: string, body: unknown }>} */
  cache: new Map(),
  /** @type {Record<string, number[]>} */
  history: { peers: [], ramFree: [], active: [], running: [] },
  /** @type {AbortController | null} */
  logFollow: null,
  followed: "",
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  timer: undefined,
};

/**
 * Makes an element: `attrs` are properties (`onclick`, `className`, `hidden`) or, for names with
 * a dash, attributes; children are nodes or text (never parsed as HTML).
 * @param {string} tag
 * @param {Record<string, unknown>} [attrs]
 * @param {...(Node | string | number | null | undefined | false)} children
 */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.includes("-")) el.setAttribute(key, String(value));
    /** @type {Record<string, unknown>} */ else el[key] = value;
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === "object" ? child : String(child));
  }
  return el;
}

/** @param {string} id */
const byId = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** Whether the page's token may use a route that needs `scope`. @param {string} scope */
function can(scope) {
  return !!state.me && (state.me.scopes.includes("*") || state.me.scopes.includes(scope));
}

class Unauthorized extends Error {}

/**
 * A request to the agent with the page's token; a 401 ends the session.
 * @param {string} path
 * @param {RequestInit} [init]
 */
async function api(path, init = {}) {
  const headers = new Headers(init.headers);
  if (state.token) headers.set("authorization", `Bearer ${state.token}`);
  const res = await fetch(path, { ...init, headers });
  if (res.status === 401) throw new Unauthorized((await errorOf(res)) || "not logged in");
  return res;
}

/** The agent's error message of a failed answer. @param {Response} res */
async function errorOf(res) {
  const body = await res.json().catch(() => null);
  return body?.error?.message ?? `${res.status} ${res.statusText}`;
}

/**
 * A JSON answer, asked with the ETag of the last one: unchanged (304), it is the same object as
 * last time, so {@link changedFor} can tell a view that nothing moved.
 * @param {string} path
 * @returns {Promise<any>}
 */
async function getJson(path) {
  const cached = state.cache.get(path);
  const res = await api(path, cached ? { headers: { "if-none-match": cached.etag } } : {});
  if (res.status === 304 && cached) return cached.body;
  if (!res.ok) throw new Error(`${path}: ${await errorOf(res)}`);
  const body = await res.json();
  const etag = res.headers.get("etag");
  if (etag) state.cache.set(path, { etag, body });
  return body;
}

/** The answer each view was last drawn from. @type {Map<string, unknown>} */
const drawnFrom = new Map();

/**
 * Whether `view` must be drawn again for `body`: it is another answer than the one it shows (or
 * the view is empty). Unchanged views are left alone: no jumps, no lost selection.
 * @param {string} view
 * @param {unknown} body
 */
function changedFor(view, body) {
  if (drawnFrom.get(view) === body && byId(`view-${view}`).childElementCount > 0) return false;
  drawnFrom.set(view, body);
  return true;
}

/** @param {number} seconds */
function duration(seconds) {
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** @param {string} iso */
function ago(iso) {
  const seconds = (Date.now() - Date.parse(iso)) / 1000;
  return seconds < 5 ? "just now" : `${duration(seconds)} ago`;
}

/** @param {number} bytes */
function size(bytes) {
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

/** @param {string} text */
const badge = (text) => h("span", { className: `state state-${text}` }, text);

/** @param {Record<string, unknown>} pairs */
function facts(pairs) {
  return h(
    "dl",
    {},
    Object.entries(pairs).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]),
  );
}

/**
 * A table in a box that scrolls sideways on a narrow screen, or `empty` said when there are no
 * rows.
 * @param {(string | false)[]} headers
 * @param {HTMLElement[]} rows
 * @param {string} empty
 */
function table(headers, rows, empty) {
  if (rows.length === 0) return h("p", { className: "muted" }, empty);
  const head = h("tr", {}, headers.filter((t) => t !== false).map((t) => h("th", {}, t)));
  return h(
    "div",
    { className: "table-wrap" },
    h("table", {}, h("thead", {}, head), h("tbody", {}, rows)),
  );
}

/**
 * A sparkline of the samples kept for `key` (the page's own history while it is open).
 * @param {string} title
 * @param {string} key
 * @param {(v: number) => string} format
 */
function chart(title, key, format) {
  const values = state.history[key] ?? [];
  const max = Math.max(1, ...values);
  const points = values.map((v, i) =>
    `${(i / Math.max(1, HISTORY - 1)) * 200},${46 - (v / max) * 44}`
  ).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 200 48");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points);
  svg.append(line);
  const last = values.at(-1);
  return h(
    "div",
    { className: "card" },
    h("div", { className: "muted" }, title),
    svg,
    h("div", {}, last === undefined ? "—" : format(last)),
  );
}

/** @param {string} key @param {number} value */
function sample(key, value) {
  const list = (state.history[key] ??= []);
  list.push(value);
  if (list.length > HISTORY) list.shift();
}

/**
 * Replaces a view's content (only called when what it shows changed: no jumps between polls).
 * @param {string} view
 * @param {...(Node | null | false | undefined)} children
 */
function show(view, ...children) {
  byId(`view-${view}`).replaceChildren(...children.filter((c) => c instanceof Node));
}

// --- views ---------------------------------------------------------------------------------

async function renderNode() {
  const s = await getJson("/v1/status");
  const hw = s.hardware;
  show(
    "node",
    h("h1", {}, "This node"),
    h(
      "div",
      { className: "grid" },
      h(
        "div",
        { className: "card" },
        facts({
          "Node id": h("span", { "data-field": "node_id" }, s.node_id),
          "Peer id": h("code", {}, s.peer_id),
          Version: s.version,
          Uptime: duration(s.uptime_s),
          Ready: s.ready ? "yes" : "no",
        }),
      ),
      h(
        "div",
        { className: "card" },
        facts({
          Hardware: `${hw.arch}, ${hw.cpu.count} CPUs (${hw.cpu.model})`,
          Board: hw.board_model,
          OS: `${hw.os} ${hw.os_release}`,
          Memory: `${hw.ram.free_mb} of ${hw.ram.total_mb} MB free`,
          Disk: `${hw.disk.free_mb} of ${hw.disk.total_mb} MB free (${hw.disk.path})`,
        }),
      ),
      h(
        "div",
        { className: "card" },
        facts({
          GPUs: hw.gpus.length === 0
            ? "none"
            : hw.gpus.map((g) => `${g.name} (${g.vram_mb} MB)`).join(", "),
          Network: s.network,
          Peers: s.peer_count,
          "Mesh access": s.mesh.open ? "open (no fleet key)" : `fleet key ${s.mesh.fleet_key}`,
          API: s.api,
        }),
      ),
    ),
    s.identity_problems.length > 0 &&
      h(
        "div",
        { className: "card error" },
        s.identity_problems.map((p) => h("p", {}, `${p.kind}: ${p.remedy ?? ""}`)),
      ),
    h("h2", {}, "Recent figures"),
    h(
      "div",
      { className: "grid" },
      chart("Connected peers", "peers", String),
      chart("Free memory", "ramFree", (v) => `${v} MB`),
      chart("Active deployments", "active", String),
      chart("Running instances", "running", String),
    ),
  );
}

/** @param {any} r */
function deploymentRow(r) {
  const type = r.directive.artifact.artifact_type.type;
  const when = r.history.at(-1)?.at;
  const actions = can("deploy:write")
    ? h(
      "td",
      {},
      r.state === "ready" &&
        h("button", {
          type: "button",
          "data-action": "activate",
          onclick: () =>
            act("POST", `/v1/deployments/${encodeURIComponent(r.directive_id)}/activate`),
        }, "Activate"),
      " ",
      h("button", {
        type: "button",
        className: "danger",
        "data-action": "delete",
        onclick: () => {
          if (confirm(`Delete deployment ${r.directive_id}?`)) {
            act("DELETE", `/v1/deployments/${encodeURIComponent(r.directive_id)}`);
          }
        },
      }, "Delete"),
    )
    : null;
  return h(
    "tr",
    { "data-id": r.directive_id },
    h("td", {}, h("code", {}, r.directive_id)),
    h("td", {}, type),
    h(
      "td",
      {},
      badge(r.state),
      r.state === "downloading" &&
        h("progress", { max: 100, value: r.progress_percent, title: `${r.progress_percent}%` }),
    ),
    h("td", { className: "error" }, r.error_message ?? ""),
    h(
      "td",
      { className: "muted", title: r.history.map((e) => `${e.at} ${e.state}`).join("\n") },
      r.history.map((e) => e.state).join(" → "),
      when ? ` (${ago(when)})` : "",
    ),
    actions,
  );
}

async function renderDeployments() {
  const body = await getJson("/v1/deployments");
  if (!changedFor("deployments", body)) return;
  const rows = body.deployments.map(deploymentRow);
  show(
    "deployments",
    h("h1", {}, "Deployments"),
    table(
      ["Deployment", "Type", "State", "Error", "History", can("deploy:write") && "Actions"],
      rows,
      "No deployments on this node.",
    ),
  );
}

/** @param {string} method @param {string} path */
async function act(method, path) {
  try {
    const res = await api(path, { method });
    if (!res.ok) problem(await errorOf(res));
    state.cache.clear();
    await poll(false);
  } catch (err) {
    handle(err);
  }
}

async function renderInstances() {
  const body = await getJson("/v1/instances");
  const view = byId("view-instances");
  if (changedFor("instances", body)) {
    const rows = body.instances.map((i) =>
      h(
        "tr",
        { "data-id": i.instance_id },
        h("td", {}, h("code", {}, i.instance_id)),
        h("td", {}, i.adapter),
        h("td", {}, badge(i.state ?? "running")),
        h("td", {}, i.pid ?? "—"),
        h("td", {}, i.restarts ?? 0),
        h("td", {}, i.cpu_seconds === undefined ? "—" : `${i.cpu_seconds.toFixed(1)} s`),
        h("td", {}, i.memory_bytes === undefined ? "—" : size(i.memory_bytes)),
        h(
          "td",
          {},
          h("button", {
            type: "button",
            "data-action": "logs",
            onclick: () => follow(i.instance_id),
          }, "Logs"),
        ),
      )
    );
    const list = table(
      ["Instance", "Adapter", "State", "PID", "Restarts", "CPU", "Memory", ""],
      rows,
      "Nothing runs on this node.",
    );
    const logs = document.getElementById("logs-pane") ??
      h(
        "div",
        { id: "logs-pane" },
        h("h2", { id: "logs-title" }, "Logs"),
        h("pre", { id: "logs", className: "logs", "aria-live": "polite" }),
      );
    view.replaceChildren(h("h1", {}, "Instances"), list, logs);
  }
  if (!state.followed && body.instances[0]) follow(body.instances[0].instance_id);
}

/**
 * Reads a server-sent event stream as it arrives, calling `onData` with each `data:` line's text.
 * @param {ReadableStream<Uint8Array>} body
 * @param {(data: string) => void} onData
 */
async function eachEvent(body, onData) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end).trim();
      buffer = buffer.slice(end + 1);
      if (line.startsWith("data: ")) onData(line.slice(6));
    }
  }
}

/**
 * Follows an instance's log with a streamed fetch (EventSource cannot send the token): the last
 * lines at once, then each new one as the agent sends it.
 * @param {string} id
 */
async function follow(id) {
  state.logFollow?.abort();
  const controller = new AbortController();
  state.logFollow = controller;
  state.followed = id;
  const pre = byId("logs");
  byId("logs-title").textContent = `Logs of ${id}`;
  pre.replaceChildren();
  try {
    const res = await api(`/v1/instances/${encodeURIComponent(id)}/logs?follow=1&lines=100`, {
      signal: controller.signal,
    });
    if (!res.ok || !res.body) {
      pre.textContent = await errorOf(res);
      return;
    }
    await eachEvent(res.body, (data) => {
      const entry = JSON.parse(data);
      const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.append(h("div", { className: entry.stream }, entry.line));
      while (pre.childElementCount > LOG_LINES) pre.firstElementChild?.remove();
      if (stick) pre.scrollTop = pre.scrollHeight;
    });
  } catch (err) {
    if (!controller.signal.aborted) handle(err);
  }
}

async function renderModels() {
  const body = await getJson("/v1/models?all=1");
  if (!changedFor("models", body)) return;
  const rows = body.data.map((m) =>
    h(
      "tr",
      { "data-id": m.id },
      h("td", {}, h("code", {}, m.id)),
      h("td", {}, m.format),
      h(
        "td",
        {},
        m.location === "local" ? "this node" : (m.nodes ?? []).map((n) => n.node_id).join(", "),
      ),
    )
  );
  const chatModels = body.data.filter((m) => m.format === "gguf");
  const chat = can("infer:run") && chatModels.length > 0
    ? h(
      "div",
      { id: "chat", className: "card" },
      h("h2", {}, "Chat"),
      h(
        "form",
        {
          id: "chat-form",
          onsubmit: (/** @type {Event} */ e) => {
            e.preventDefault();
            void sendChat();
          },
        },
        h(
          "select",
          { id: "chat-model", "aria-label": "model" },
          chatModels.map((m) => h("option", { value: m.id }, m.id)),
        ),
        h("input", {
          id: "chat-input",
          placeholder: "Say something",
          "aria-label": "message",
          size: 40,
        }),
        h("button", { type: "submit" }, "Send"),
      ),
      h("div", { id: "chat-out", className: "chat-out", "aria-live": "polite" }),
    )
    : null;
  // a chat in progress is kept as it is
  const existing = document.getElementById("chat");
  show(
    "models",
    h("h1", {}, "Models"),
    table(["Model", "Format", "Runs on"], rows, "No model is loaded here or on a peer."),
    existing ?? chat,
  );
}

/** Sends the chat box's message and streams the answer in, token by token. */
async function sendChat() {
  const model = /** @type {HTMLSelectElement} */ (byId("chat-model")).value;
  const input = /** @type {HTMLInputElement} */ (byId("chat-input"));
  const out = byId("chat-out");
  out.textContent = "";
  try {
    const res = await api("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model,
        stream: true,
        max_tokens: 64,
        messages: [{ role: "user", content: input.value }],
      }),
    });
    if (!res.ok || !res.body) {
      out.textContent = await errorOf(res);
      return;
    }
    await eachEvent(res.body, (data) => {
      if (data === "[DONE]") return;
      const delta = JSON.parse(data).choices?.[0]?.delta?.content;
      if (delta) out.append(delta);
    });
  } catch (err) {
    handle(err);
  }
}

async function renderFleet() {
  const body = await getJson("/v1/fleet");
  if (!changedFor("fleet", body)) return;
  const rows = body.nodes.map((n) =>
    h(
      "tr",
      { "data-id": n.peer_id },
      h(
        "td",
        {},
        n.node_id ?? "?",
        n.self ? h("span", { className: "muted" }, " (this node)") : "",
      ),
      h("td", {}, h("code", { title: n.peer_id }, n.peer_id.slice(-8))),
      h(
        "td",
        {},
        badge(n.online ? "online" : "offline"),
        h("div", { className: "muted" }, n.self ? "" : `seen ${ago(n.last_seen)}`),
      ),
      h("td", {}, n.arch ?? "—"),
      h("td", {}, n.gpus.length === 0 ? "—" : n.gpus.map((g) => g.name).join(", ")),
      h("td", {}, n.version ?? "—"),
      h("td", {}, n.instances.length === 0 ? "—" : n.instances.join(", ")),
      h(
        "td",
        {},
        n.deployments.map((d) =>
          h(
            "div",
            { title: d.error_message ?? "" },
            h("code", {}, d.directive_id),
            " ",
            badge(d.state),
          )
        ),
      ),
    )
  );
  show(
    "fleet",
    h("h1", {}, "Fleet"),
    table(
      ["Node", "Peer", "Online", "Arch", "GPUs", "Version", "Runs", "Deployments"],
      rows,
      "No node heard from yet.",
    ),
  );
}

const RENDER = {
  node: renderNode,
  deployments: renderDeployments,
  instances: renderInstances,
  models: renderModels,
  fleet: renderFleet,
};

// --- session, polling ----------------------------------------------------------------------

/** Takes the figures the charts follow (from answers the page asks for anyway). */
async function sampleFigures() {
  const s = await getJson("/v1/status");
  sample("peers", s.peer_count);
  sample("ramFree", s.hardware.ram.free_mb);
  const d = await getJson("/v1/deployments");
  sample("active", d.deployments.filter((r) => r.state === "active").length);
  const i = await getJson("/v1/instances");
  sample("running", i.instances.filter((x) => (x.state ?? "running") === "running").length);
}

/** @param {boolean} [again] */
async function poll(again = true) {
  clearTimeout(state.timer);
  try {
    await sampleFigures();
    await RENDER[state.view]();
    byId("problem").hidden = true;
  } catch (err) {
    handle(err);
  }
  if (again && state.token) state.timer = setTimeout(() => void poll(), POLL_MS);
}

/** @param {unknown} err */
function handle(err) {
  if (err instanceof Unauthorized) {
    logout(err.message);
    return;
  }
  problem(err instanceof Error ? err.message : String(err));
}

/** @param {string} text */
function problem(text) {
  const el = byId("problem");
  el.textContent = text;
  el.hidden = false;
}

function route() {
  const wanted = location.hash.slice(1);
  const view = VIEWS.includes(wanted) ? wanted : "node";
  if (view !== "instances") {
    state.logFollow?.abort();
    state.followed = "";
  }
  state.view = view;
  for (const v of VIEWS) byId(`view-${v}`).hidden = v !== view;
  for (const a of document.querySelectorAll("#tabs a")) {
    if (/** @type {HTMLElement} */ (a).dataset.view === view) {
      a.setAttribute("aria-current", "page");
    } else a.removeAttribute("aria-current");
  }
  if (state.token) void poll();
}

/** @param {string} [why] */
function logout(why) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.me = null;
  state.cache.clear();
  drawnFrom.clear();
  state.logFollow?.abort();
  clearTimeout(state.timer);
  for (const v of VIEWS) byId(`view-${v}`).replaceChildren();
  byId("tabs").hidden = true;
  byId("logout").hidden = true;
  byId("whoami").textContent = "";
  byId("login").hidden = false;
  for (const v of VIEWS) byId(`view-${v}`).hidden = true;
  byId("login-error").textContent = why ?? "";
}

/** @param {string} token */
async function start(token) {
  state.token = token;
  const res = await api("/v1/status");
  if (!res.ok) throw new Error(await errorOf(res));
  const status = await res.json();
  state.me = status.token;
  sessionStorage.setItem(TOKEN_KEY, token);
  const until = state.me?.expires_at
    ? `, until ${new Date(state.me.expires_at).toLocaleString()}`
    : "";
  byId("whoami").textContent = `${status.node_id} · ${state.me?.name} (${
    state.me?.scopes.join(", ")
  }${until})`;
  byId("login").hidden = true;
  byId("tabs").hidden = false;
  byId("logout").hidden = false;
  route();
}

/** The code in `?code=` (from `loam console`) traded for a session token, once. */
async function redeem(code) {
  history.replaceState(null, "", location.pathname + location.hash);
  const res = await fetch("/v1/console/session", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ code }),
  });
  if (!res.ok) throw new Unauthorized(await errorOf(res));
  return (await res.json()).token;
}

async function main() {
  addEventListener("hashchange", route);
  byId("logout").addEventListener("click", () => logout());
  byId("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const value = /** @type {HTMLInputElement} */ (byId("login-token")).value.trim();
    start(value).catch(handle);
  });
  try {
    const code = new URLSearchParams(location.search).get("code");
    const token = code ? await redeem(code) : sessionStorage.getItem(TOKEN_KEY);
    if (token) await start(token);
    else logout();
  } catch (err) {
    handle(err);
  }
}

void main();
