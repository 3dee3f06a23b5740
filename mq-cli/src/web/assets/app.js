// mq web: the page. Plain JavaScript, no build step, no third-party code. Every element is
// built with `el()` from text (never innerHTML), so a payload, error or queue name can never
// become markup. Views poll their one API call every `refresh_ms` (the server caches the
// queue overview, so viewers do not multiply Redis reads).
"use strict";

const state = { config: null, timer: null, selected: new Set(), token: sessionStorage.getItem("mq-token") || "" };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, body) {
  const headers = { "Accept": "application/json" };
  if (state.token) headers["Authorization"] = "Bearer " + state.token;
  const init = { headers };
  if (body !== undefined) {
    init.method = "POST";
    headers["Content-Type"] = "application/json";
    headers["X-Requested-By"] = "mq-web";
    init.body = JSON.stringify(body);
  }
  const res = await fetch("/api" + path, init);
  let doc = null;
  try { doc = await res.json(); } catch (_) { /* not JSON */ }
  if (!res.ok) throw new ApiError(res.status, (doc && doc.error) || res.statusText);
  return doc;
}

function flash(text, error) {
  const f = document.getElementById("flash");
  f.hidden = false;
  f.className = error ? "error" : "";
  f.textContent = text;
  clearTimeout(flash.t);
  flash.t = setTimeout(() => { f.hidden = true; }, error ? 12000 : 5000);
}

const q = encodeURIComponent;
const num = (n) => (n === null || n === undefined ? "" : Number(n).toLocaleString());
const rate = (r) => (r === null || r === undefined ? "–" : r < 10 ? r.toFixed(1) : Math.round(r).toLocaleString());
function when(ms) {
  if (!ms) return "";
  const d = new Date(ms);
  const s = Math.round((ms - Date.now()) / 1000);
  const rel = Math.abs(s) < 90 ? `${Math.abs(s)} s` : Math.abs(s) < 5400 ? `${Math.round(Math.abs(s) / 60)} min` : `${Math.round(Math.abs(s) / 3600)} h`;
  return `${d.toLocaleString()} (${s >= 0 ? "in " + rel : rel + " ago"})`;
}
function ms(n) { return n === null || n === undefined ? "" : n < 1000 ? `${n} ms` : n < 120000 ? `${(n / 1000).toFixed(1)} s` : `${Math.round(n / 60000)} min`; }

async function act(what, path, body, confirmText) {
  if (confirmText && !window.confirm(confirmText)) return null;
  try {
    const r = await api(path, body || {});
    flash(what(r));
    render();
    return r;
  } catch (e) {
    handle(e);
    return null;
  }
}

function handle(e) {
  if (e instanceof ApiError && e.status === 401) { login(e.message); return; }
  flash(e.message || String(e), true);
}

function login(message) {
  stop();
  const input = el("input", { type: "password", name: "token", autocomplete: "current-password", required: true, "aria-label": "token" });
  const form = el("form", { class: "login", onsubmit: (ev) => {
    ev.preventDefault();
    state.token = input.value;
    sessionStorage.setItem("mq-token", state.token);
    start();
  } }, el("h1", {}, "Sign in"), el("p", { class: "muted" }, message), input, el("button", { type: "submit" }, "Sign in"));
  show(form);
  input.focus();
}

function show(...nodes) {
  const main = document.getElementById("main");
  main.replaceChildren(...nodes);
}

function canAct() { return state.config && !state.config.read_only; }
function actionButton(label, onclick, danger) {
  return canAct() ? el("button", { class: danger ? "danger" : undefined, onclick }, label) : null;
}

// ---- views ---------------------------------------------------------------------------------

async function queuesView() {
  const doc = await api("/queues");
  const rows = [];
  for (const item of doc.queues) {
    const t = item.total;
    rows.push(el("tr", { "data-queue": item.queue },
      el("td", {}, el("a", { href: `#/q/${q(item.queue)}/queued` }, item.queue), " ", t.paused ? el("span", { class: "pill" }, "paused") : null),
      el("td", { class: "num" }, num(t.backlog)),
      el("td", { class: "num" }, num(t.pending)),
      el("td", { class: "num" }, num(t.delayed)),
      el("td", { class: "num" + (t.dead ? " bad" : "") }, el("a", { href: `#/q/${q(item.queue)}/dead` }, num(t.dead))),
      el("td", { class: "num" }, num(t.consumers)),
      el("td", { class: "num" }, rate(t.enqueued_per_sec)),
      el("td", { class: "num" }, rate(t.done_per_sec)),
      el("td", {}, t.paused
        ? actionButton("Resume", () => act(() => `${item.queue} resumed`, `/queues/${q(item.queue)}/resume`))
        : actionButton("Pause", () => act(() => `${item.queue} paused`, `/queues/${q(item.queue)}/pause`)))));
    for (const s of item.partitions.concat(item.levels)) {
      rows.push(el("tr", { class: "sub" },
        el("td", {}, el("a", { href: `#/q/${q(s.queue)}/queued` }, s.queue)),
        el("td", { class: "num" }, num(s.backlog)), el("td", { class: "num" }, num(s.pending)),
        el("td", { class: "num" }, num(s.delayed)), el("td", { class: "num" }, num(s.dead)),
        el("td", { class: "num" }, num(s.consumers)), el("td", { class: "num" }, rate(s.enqueued_per_sec)),
        el("td", { class: "num" }, rate(s.done_per_sec)), el("td", {})));
    }
  }
  const head = ["Queue", "Queued", "Running", "Delayed", "Dead", "Consumers", "Enqueued/s", "Done/s", ""];
  show(el("h1", {}, "Queues"),
    doc.queues.length === 0 ? el("p", { class: "muted" }, "No queues yet: a worker or producer registers its queues when it starts.") :
      el("table", { id: "queues" }, el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { class: i > 0 && i < 8 ? "num" : undefined }, h)))), el("tbody", {}, rows)),
    el("p", { class: "muted" }, doc.rate_window_secs ? `Rates over the last ${doc.rate_window_secs.toFixed(1)} s.` : "Rates appear at the next refresh."));
}

const STATES = ["queued", "running", "delayed", "dead"];

async function queueView(queue, st, cursor) {
  const path = `/queues/${q(queue)}/tasks?state=${st}&count=50` + (cursor ? `&cursor=${q(cursor)}` : "");
  const page = await api(path);
  const tabs = el("div", { class: "tabs" }, STATES.map((s) => el("a", { href: `#/q/${q(queue)}/${s}`, class: s === st ? "active" : undefined }, s)));
  const cols = {
    queued: ["Entry", "Task", "Name", "Enqueued", "Payload"],
    running: ["Entry", "Task", "Name", "Consumer", "Since", "Deliveries", "Attempt"],
    delayed: ["Due", "Task", "Name", "Attempt", "Last error"],
    dead: ["", "Dead id", "Task", "Name", "Failed", "Attempts", "Reason"],
  }[st];
  const body = page.rows.map((r) => {
    const link = taskLink(queue, st, r);
    const task = link ? el("a", { href: link, class: "mono" }, r.task_id || r.entry_id) : el("span", { class: "bad" }, r.problem || "?");
    if (st === "queued") return el("tr", {}, el("td", { class: "mono" }, r.entry_id), el("td", {}, task), el("td", {}, r.name), el("td", {}, when(r.enqueued_at_ms)), el("td", { class: "cut mono" }, r.payload_preview || r.problem));
    if (st === "running") return el("tr", {}, el("td", { class: "mono" }, r.entry_id), el("td", {}, task), el("td", {}, r.name), el("td", { class: "mono" }, r.consumer), el("td", {}, ms(r.idle_ms) + " idle"), el("td", { class: "num" }, r.deliveries), el("td", { class: "num" }, r.attempt));
    if (st === "delayed") return el("tr", {}, el("td", {}, when(r.due_ms)), el("td", {}, task), el("td", {}, r.name), el("td", { class: "num" }, r.attempt), el("td", { class: "cut bad" }, r.error || ""));
    const box = canAct() ? el("input", { type: "checkbox", "data-id": r.entry_id, "aria-label": "select " + r.entry_id, checked: state.selected.has(r.entry_id), onchange: (ev) => { ev.target.checked ? state.selected.add(r.entry_id) : state.selected.delete(r.entry_id); } }) : null;
    return el("tr", { "data-dead-id": r.entry_id }, el("td", {}, box), el("td", { class: "mono" }, el("a", { href: link }, r.entry_id)), el("td", { class: "mono" }, r.task_id || ""), el("td", {}, r.name || ""), el("td", {}, when(r.failed_at_ms)), el("td", { class: "num" }, r.attempt), el("td", { class: "cut bad" }, r.reason || r.problem || ""));
  });
  const bar = el("div", { class: "bar" },
    cursor ? el("button", { onclick: () => { location.hash = `#/q/${q(queue)}/${st}`; } }, "First page") : null,
    page.next ? el("button", { id: "next", onclick: () => { location.hash = `#/q/${q(queue)}/${st}?cursor=${q(page.next)}`; } }, "Next page") : null,
    el("span", { class: "muted" }, `${page.rows.length} shown${page.next ? ", more on the next page" : ""}`));
  const dead = st === "dead" && canAct() ? el("div", { class: "bar" },
    el("button", { id: "replay-selected", onclick: () => selectedAction(queue, "replay") }, "Replay selected"),
    el("button", { class: "danger", id: "delete-selected", onclick: () => selectedAction(queue, "delete") }, "Delete selected"),
    el("button", { id: "replay-all", onclick: () => act((r) => `replayed ${r.replayed} of ${queue}'s dead tasks`, `/queues/${q(queue)}/dead/replay`, { all: true }, `Replay every dead task of ${queue}?`) }, "Replay all"),
    el("button", { class: "danger", id: "purge", onclick: () => act((r) => `purged ${r.purged} dead tasks`, `/queues/${q(queue)}/dead/purge`, {}, `Delete every dead task of ${queue}? This cannot be undone.`) }, "Purge")) : null;
  show(el("h1", {}, el("a", { href: "#/" }, "Queues"), " / ", queue), tabs, dead,
    page.rows.length === 0 ? el("p", { class: "muted" }, `No ${st} tasks.`) :
      el("table", { id: "tasks" }, el("thead", {}, el("tr", {}, cols.map((c) => el("th", {}, c)))), el("tbody", {}, body)),
    bar, canAct() && !queue.includes("#") && !queue.includes("@") ? enqueueForm(queue) : null,
    el("p", {}, el("a", { href: `#/keys/${q(queue)}` }, "Key slots and unique keys")));
}

function taskLink(queue, st, r) {
  if (!r.task_id && !r.entry_id) return null;
  if (st === "delayed") return r.task_id ? `#/t/${q(queue)}?state=delayed&stream=${q(r.stream)}&id=${q(r.task_id)}&due=${r.due_ms}` : null;
  return `#/t/${q(queue)}?state=${st}&stream=${q(r.stream)}&id=${q(r.entry_id)}`;
}

async function selectedAction(queue, verb) {
  const ids = [...state.selected];
  if (ids.length === 0) { flash("Select dead tasks first.", true); return; }
  const r = await act((r) => verb === "replay" ? `replayed ${r.replayed} of ${ids.length}` : `deleted ${r.deleted} of ${ids.length}`,
    `/queues/${q(queue)}/dead/${verb}`, { ids }, verb === "delete" ? `Delete ${ids.length} dead tasks?` : undefined);
  if (r) state.selected.clear();
}

function enqueueForm(queue) {
  const name = el("input", { name: "name", placeholder: "Task name, e.g. EmbedText", required: true });
  const payload = el("textarea", { name: "payload", placeholder: '{"product_id": 7, "text": "red shoe"}' });
  return el("form", { id: "enqueue", onsubmit: (ev) => {
    ev.preventDefault();
    let value;
    try { value = payload.value.trim() === "" ? {} : JSON.parse(payload.value); } catch (e) { flash("The payload is not JSON: " + e.message, true); return; }
    act((r) => `enqueued ${r.id}`, `/queues/${q(queue)}/enqueue`, { name: name.value, payload: value });
  } }, el("h2", {}, "Enqueue a task"), el("div", { class: "bar" }, name), payload, el("div", { class: "bar" }, el("button", { type: "submit" }, "Enqueue")));
}

async function taskView(queue, params) {
  const st = params.get("state");
  const t = await api(`/queues/${q(queue)}/task?${params.toString()}`);
  const fields = [["State", st], ["Stream", t.stream], ["Entry id", t.entry_id], ["Task id", t.task_id], ["Name", t.name], ["Attempt", t.attempt],
    ["Enqueued", when(t.enqueued_at_ms)], ["Due", when(t.due_ms)], ["Consumer", t.consumer], ["Idle", ms(t.idle_ms)], ["Deliveries", t.deliveries],
    ["Unique key", t.unique], ["Last error", t.error], ["Dead reason", t.reason], ["Failed", when(t.failed_at_ms)], ["Worker", t.worker], ["Problem", t.problem]]
    .filter(([, v]) => v !== undefined && v !== null && v !== "");
  const actions = el("div", { class: "bar" },
    st === "dead" ? actionButton("Replay", async () => { if (await act((r) => `replayed ${r.replayed}`, `/queues/${q(queue)}/dead/replay`, { ids: [t.entry_id] })) location.hash = `#/q/${q(queue)}/dead`; }) : null,
    st === "dead" ? actionButton("Delete", async () => { if (await act((r) => `deleted ${r.deleted}`, `/queues/${q(queue)}/dead/delete`, { ids: [t.entry_id] }, "Delete this dead task?")) location.hash = `#/q/${q(queue)}/dead`; }, true) : null,
    st !== "dead" && t.task_id ? actionButton("Cancel", () => act((r) => `cancel: ${r.outcome}${r.consumer ? " on " + r.consumer : ""}`, `/queues/${q(t.stream.split("@")[0])}/cancel`, { id: t.task_id }, "Cancel this task?"), true) : null);
  show(el("h1", {}, el("a", { href: "#/" }, "Queues"), " / ", el("a", { href: `#/q/${q(queue)}/${st}` }, queue), " / ", t.task_id || t.entry_id),
    el("dl", { class: "fields" }, fields.map(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))])),
    actions,
    el("h2", {}, "Payload", t.payload_bytes !== undefined ? el("span", { class: "muted" }, ` (${t.payload_bytes} bytes of MessagePack)`) : null),
    el("pre", { id: "payload" }, JSON.stringify(t.payload, null, 2)),
    t.status ? [el("h2", {}, "Status"), el("pre", {}, JSON.stringify({ status: t.status, result: t.result, progress: t.progress }, null, 2))] : null,
    t.events ? [el("h2", {}, "Events", t.events_complete ? null : el("span", { class: "muted" }, " (among the queue's newest 1,000 events; older ones are not shown)")),
      t.events.length === 0 ? el("p", { class: "muted" }, "No events of this task are kept.") :
      el("table", { id: "events" }, el("thead", {}, el("tr", {}, ["At", "Event", "Details"].map((h) => el("th", {}, h)))),
        el("tbody", {}, t.events.map((e) => el("tr", {}, el("td", {}, when(Number(e.at.split("-")[0]))), el("td", {}, e.event),
          el("td", { class: "mono" }, Object.entries(e.details).map(([k, v]) => `${k}=${v}`).join(" "))))))] : null,
    t.dead ? [el("h2", {}, "Dead letter fields"), el("pre", {}, JSON.stringify(t.dead, null, 2))] : null);
}

async function workersView() {
  const doc = await api("/workers");
  show(el("h1", {}, "Workers"), doc.workers.length === 0 ? el("p", { class: "muted" }, "No workers registered.") :
    el("table", { id: "workers" }, el("thead", {}, el("tr", {}, ["Consumer", "Live", "Queues", "Concurrency", "Started", "Last heartbeat"].map((h) => el("th", {}, h)))),
      el("tbody", {}, doc.workers.map((w) => el("tr", {}, el("td", { class: "mono" }, w.consumer), el("td", { class: w.live ? "ok" : "bad" }, w.live ? "yes" : "expired"),
        el("td", {}, (w.queues || []).join(", ")), el("td", { class: "num" }, w.concurrency), el("td", {}, when(w.started_at_ms)), el("td", {}, when(w.last_beat_ms)))))));
}

async function schedulesView() {
  const doc = await api("/schedules");
  show(el("h1", {}, "Schedules"), doc.schedules.length === 0 ? el("p", { class: "muted" }, "No cron schedules recorded.") :
    el("table", { id: "schedules" }, el("thead", {}, el("tr", {}, ["Name", "Queue", "Expression", "Time zone", "Last tick", "Next tick"].map((h) => el("th", {}, h)))),
      el("tbody", {}, doc.schedules.map((s) => el("tr", {}, el("td", {}, s.name), el("td", {}, s.queue), el("td", { class: "mono" }, s.expression), el("td", {}, s.timezone), el("td", {}, when(s.last_ms)), el("td", {}, when(s.next_ms)))))));
}

async function keysView(queue) {
  const doc = await api(`/queues/${q(queue)}/keys`);
  show(el("h1", {}, el("a", { href: "#/" }, "Queues"), " / ", el("a", { href: `#/q/${q(queue)}/queued` }, queue), " / keys"),
    el("p", {}, `Unique keys held: ${num(doc.unique_keys)}${doc.unique_keys_partial ? " (partial: the scan stopped at its cap)" : ""}`),
    el("h2", {}, "Per-key concurrency slots in use", doc.key_slots_partial ? " (partial)" : ""),
    doc.key_slots.length === 0 ? el("p", { class: "muted" }, "None.") :
      el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Key"), el("th", { class: "num" }, "Running"))),
        el("tbody", {}, doc.key_slots.map((k) => el("tr", {}, el("td", { class: "mono" }, k.key), el("td", { class: "num" }, k.running))))));
}

// ---- routing -------------------------------------------------------------------------------

function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.nav === (parts[0] === "workers" ? "workers" : parts[0] === "schedules" ? "schedules" : "queues")));
  if (parts[0] === "q" && parts[1]) return () => queueView(parts[1], STATES.includes(parts[2]) ? parts[2] : "queued", params.get("cursor"));
  if (parts[0] === "t" && parts[1]) return () => taskView(parts[1], params);
  if (parts[0] === "keys" && parts[1]) return () => keysView(parts[1]);
  if (parts[0] === "workers") return workersView;
  if (parts[0] === "schedules") return schedulesView;
  return queuesView;
}

let rendering = false;
async function render() {
  if (rendering) return;
  rendering = true;
  try {
    await route()();
    document.getElementById("live").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.ready = "1";
  } catch (e) {
    handle(e);
  } finally {
    rendering = false;
  }
}

function stop() { clearInterval(state.timer); state.timer = null; }

async function start() {
  try {
    state.config = await api("/config");
  } catch (e) {
    handle(e);
    return;
  }
  document.getElementById("server").textContent = `${state.config.redis} · prefix ${state.config.prefix}${state.config.read_only ? " · read-only" : ""}`;
  await render();
  stop();
  // A view with a form being typed into, or a task page, is not redrawn under the user's hands.
  state.timer = setInterval(() => {
    const busy = document.activeElement && ["INPUT", "TEXTAREA"].includes(document.activeElement.tagName);
    if (!busy && !location.hash.startsWith("#/t/")) render();
  }, state.config.refresh_ms);
}

window.addEventListener("hashchange", () => { state.selected.clear(); render(); });
window.addEventListener("DOMContentLoaded", start);
