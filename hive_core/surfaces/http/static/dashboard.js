// The dashboard page: wires the live stream to the state, and the state to the sections.
//
// Rules kept here:
// - Events change the state at once; the DOM is redrawn once per animation frame, only the parts
//   that changed (`state.dirty`, `state.dirtyAgents`).
// - The graph and the message flow take the live events unless a replay is running; the other
//   sections always show the live hive.
// - Events that lack their full row trigger one snapshot re-fetch (coalesced), never a timer.

import { Live, act, call, getJSON } from "./api.js";
import { HiveState } from "./state.js";
import { renderNeeds } from "./needs.js";
import { Flow } from "./flow.js";
import { installCompose, renderInbox } from "./compose.js";
import { installLifecycle } from "./lifecycle.js";
import { Graph } from "./graph.js";
import { Replay } from "./replay.js";
import { CostPanel } from "./costs.js";
import { h, ago, timeMs, agentState, budgetBar, chips, clock, frameBatcher, lifecycleButtons, money, shortSha, tokens } from "./ui.js";

const $ = (id) => document.getElementById(id);
const state = new HiveState();
const rows = new Map(); // name -> <tr>
let filter = "";

const flow = new Flow($("flow"), $("flow-new"), $("flow-mode"));
const graph = new Graph($("graph"), $("graph-counters"));
// The cost panel; its answers' budgets fill rows that came without one (a spawn's row).
const costs = new CostPanel($("costs-panel"), (name) => state.agents.get(name), (budgets) => {
  for (const [name, b] of budgets) {
    const r = state.agents.get(name);
    if (r && r.budget === undefined) { r.budget = b; state.touchAgent(name); }
  }
  redraw();
});
const compose = installCompose($("compose"), () => [...state.agents.keys()].sort());

function doingCell(td, act, r) {
  td.className = `doing${act?.busy ? " busy" : ""}`;
  td.title = act?.at ? `${act.text} · ${clock(act.at)}` : "";
  td.textContent = act?.text ?? (r.last_turn_at ? `idle ${ago(r.last_turn_at)}` : "");
}

// Today's cost of a row: its `cost_usd`, or $0 once the daemon sent a budget (it counts turns).
function costToday(r) {
  return r.cost_usd ?? (r.budget ? 0 : undefined);
}

function agentRow(r) {
  const crash = state.crash.get(r.name);
  const act = state.activity.get(r.name);
  const doing = h("td");
  doingCell(doing, act, r);
  const tr = h("tr", { "data-agent": r.name, "data-state": agentState(r), class: `st-${agentState(r)}` },
    h("td", { class: "name" }, h("a", { href: `/agents/${encodeURIComponent(r.name)}` }, r.name),
      r.parent ? h("span", { class: "muted parent", title: `spawned by ${r.parent}` }, ` ↖${r.parent}`) : null),
    h("td", { class: "chips" }, chips(r, { crashes: crash?.count, crashNote: crash?.note, budgetWarning: state.budgetWarn.get(r.name) })),
    doing,
    h("td", { class: "model muted" }, r.active_model ? r.active_model.replace(/^claude-/, "") : ""),
    h("td", { class: "num" }, r.context_tokens !== undefined ? h("span", { class: "badge ctx" }, tokens(r.context_tokens)) : ""),
    h("td", { class: "num" }, costToday(r) !== undefined ? h("span", { class: "badge cost", title: "cost today (UTC)" }, money(costToday(r)) || "$0.00") : ""),
    h("td", null, budgetBar(r.budget)),
    h("td", { class: "mono muted", title: r.deployed_sha || "" }, shortSha(r.deployed_sha)),
    h("td", { class: "status", title: [r.paused && r.paused_reason, r.status_text ? `${r.status_text}${r.status_set_at ? ` (${clock(r.status_set_at)})` : ""}` : crash?.note].filter(Boolean).join("\n") },
      r.paused && r.paused_reason ? h("span", { class: "paused-reason" }, r.paused_reason) : null,
      r.failed && crash?.note ? h("span", { class: "crash-note" }, crash.note) : r.paused && r.paused_reason ? "" : r.status_text || ""),
    h("td", { class: "actions" }, lifecycleButtons(r)));
  tr.hidden = filter !== "" && !r.name.includes(filter);
  return tr;
}

function renderAgents() {
  const tbody = $("agents").tBodies[0];
  if (state.dirty.has("all")) {
    const names = [...state.agents.keys()].sort();
    const want = new Set(names);
    for (const [name, tr] of rows) if (!want.has(name)) { tr.remove(); rows.delete(name); }
    let prev = null;
    for (const name of names) {
      let tr = rows.get(name);
      if (!tr || state.dirtyAgents.has(name)) {
        const next = agentRow(state.agents.get(name));
        if (tr) tr.replaceWith(next);
        tr = next;
        rows.set(name, tr);
      }
      const at = prev ? prev.nextSibling : tbody.firstChild;
      if (tr !== at) tbody.insertBefore(tr, at);
      prev = tr;
    }
  } else {
    for (const name of state.dirtyAgents) {
      const r = state.agents.get(name);
      const tr = rows.get(name);
      if (r && tr) {
        const next = agentRow(r);
        tr.replaceWith(next);
        rows.set(name, next);
      }
    }
  }
  for (const name of state.dirtyActivity) {
    if (state.dirtyAgents.has(name)) continue;
    const td = rows.get(name)?.cells[2];
    const r = state.agents.get(name);
    if (td && r) doingCell(td, state.activity.get(name), r);
  }
  const running = [...state.agents.values()].filter((r) => r.running).length;
  $("agents-count").textContent = `${running}/${state.agents.size} running`;
  $("agents-empty").hidden = state.agents.size > 0;
}

function renderDead() {
  const items = [...state.dead.values()].sort((a, b) => a.id - b.id);
  $("dead-count").textContent = items.length || "";
  $("dead").replaceChildren(...(items.length ? items.map((m) => h("div", { class: "crow", "data-dead": m.id },
    h("span", { class: "muted" }, `#${m.id}`), h("span", { class: "who" }, `${m.from} → ${m.to}`),
    h("span", { class: "pv", title: m.body }, m.body), h("span", { class: "muted" }, `×${m.deliveries}`),
    h("button", { class: "btn small requeue", onclick: async () => { if (await act("requeue_dead", { id: m.id }, `requeued #${m.id}`)) { state.dead.delete(m.id); state.touch("dead"); redraw(); } } }, "requeue"),
    h("button", { class: "btn small drop danger", onclick: async () => { if (await act("drop_dead", { id: m.id }, `dropped #${m.id}`)) { state.dead.delete(m.id); state.touch("dead"); redraw(); } } }, "drop")))
    : [h("div", { class: "muted empty" }, "none")]));
}

function renderReminders() {
  const items = [...state.reminders.values()].filter((r) => r.status !== "fired" && r.status !== "done")
    .sort((a, b) => (b.status === "failed") - (a.status === "failed") || (timeMs(a.due_at) || 0) - (timeMs(b.due_at) || 0));
  $("reminders-count").textContent = items.length || "";
  $("reminders").replaceChildren(...(items.length ? items.map((r) => h("div", { class: `crow${r.status === "failed" ? " bad" : ""}`, "data-reminder": r.id },
    h("span", { class: "muted" }, `#${r.id}`), h("a", { class: "who", href: `/agents/${encodeURIComponent(r.agent)}` }, r.agent),
    h("span", { class: "muted", title: r.due_at }, r.status === "failed" ? "failed" : ago(r.due_at)),
    h("span", { class: "pv", title: r.last_error || r.message }, r.last_error ? `${r.last_error} · ${r.message}` : r.message || (r.file_path ?? "")),
    r.status === "failed" ? h("button", { class: "btn small retry", onclick: () => act("retry_reminder", { id: r.id }, `retrying #${r.id}`) }, "retry") : null))
    : [h("div", { class: "muted empty" }, "none")]));
}

function renderTombstones() {
  const items = [...state.tombstones.values()];
  $("tombstones-count").textContent = items.length || "";
  $("tombstones").replaceChildren(...(items.length ? items.map((t) => h("div", { class: "crow", "data-tombstone": t.name },
    h("span", { class: "who" }, t.name), h("span", { class: "muted" }, `destroyed ${ago(t.destroyed_at)} ago`)))
    : [h("div", { class: "muted empty" }, "none")]));
}

let needCounts = { approvals: 0, questions: 0, failed: 0 };
function renderCounters() {
  const c = needCounts;
  const running = [...state.agents.values()].filter((r) => r.running).length;
  const item = (k, v, hot) => h("span", { class: `ctr${hot && v ? " hot" : ""}`, "data-counter": k }, h("b", null, String(v)), ` ${k}`);
  $("counters").replaceChildren(item("agents", state.agents.size), item("running", running),
    item("approvals", c.approvals, true), item("questions", c.questions, true), item("failed", c.failed, true),
    item("dead", state.dead.size, true));
  $("seq").textContent = state.seq >= 0 ? `seq ${state.seq}` : "";
}

const redraw = frameBatcher(() => {
  const d = state.dirty;
  if (d.has("agents") || d.has("all") || d.has("activity")) renderAgents();
  if (d.has("approvals") || d.has("questions") || d.has("agents") || d.has("all")) needCounts = renderNeeds(state);
  if (d.has("inbox")) {
    renderInbox($("inbox"), state.inbox, (name) => compose.replyTo(name));
    $("inbox-count").textContent = state.inbox.length || "";
  }
  if (d.has("dead")) renderDead();
  if (d.has("reminders")) renderReminders();
  if (d.has("tombstones")) renderTombstones();
  if (state.dirtyAgents.size) costs.rowsChanged(state.dirtyAgents);
  if (d.has("approvals") || d.has("questions") || d.has("all")) graph.setMarkers(state);
  renderCounters();
  replay.paint();
  state.dirty.clear();
  state.dirtyAgents.clear();
  state.dirtyActivity.clear();
}, 100);

const live = new Live({
  onConn: (s) => {
    const el = $("conn");
    el.dataset.state = s;
    el.textContent = s;
  },
  onSnapshot: (snap) => {
    if (state.seq < 0) backfillFlow(snap.seq);
    state.load(snap);
    state.needRefresh = false;
    if (!replay.active) graph.sync(state.agents.values());
    replay.liveSeq(snap.seq);
    costs.want();
    redraw();
  },
  onEvent: (ev) => {
    state.apply(ev);
    if (ev.kind === "agent_activity" && ev.activity?.kind === "turn_end") costs.want();
    else if (ev.kind === "container_state_changed") {
      const r = state.agents.get(ev.agent ?? ev.row?.name);
      if (r && r.budget === undefined) costs.want(); // a new agent: its budget comes with the panel
      else costs.rowChanged(ev.row);
    }
    flow.liveEvent(ev);
    if (!replay.active) graph.event(ev);
    replay.liveSeq(ev.seq);
    if (state.needRefresh) {
      state.needRefresh = false;
      live.refresh();
    }
    redraw();
  },
});

// The flow starts with the last messages before the page opened (one bounded history page).
async function backfillFlow(seq) {
  try {
    const page = await getJSON(`/dashboard/history?since_seq=${Math.max(0, seq - 300)}&limit=300`);
    flow.backfill((page.events || []).filter((e) => e.seq <= seq));
  } catch { /* no history: the flow starts empty */ }
}

const replay = new Replay($("replay"), {
  enter: (rows) => { flow.setMode("replay"); graph.reset(rows, "replay"); },
  event: (ev) => { flow.replayEvent(ev); graph.event(ev); },
  leave: () => { flow.setMode("live"); graph.reset([...state.agents.values()], "live"); graph.setMarkers(state); live.refresh(); },
});

installLifecycle(document, { redraw: (name) => { state.touchAgent(name); redraw(); } });
$("agent-filter").addEventListener("input", (e) => {
  filter = e.target.value.trim();
  for (const [name, tr] of rows) tr.hidden = filter !== "" && !name.includes(filter);
});

// The hive's name, if the daemon knows its domain.
call("urls", {}).then((env) => {
  const name = env?.urls?.domain;
  if (name) { $("hive-name").textContent = name; document.title = `hive · ${name}`; }
}).catch(() => {});

// The one timer: ages on screen (last event age, "… ago"); it fetches nothing.
setInterval(() => graph.tick(live.lastEventAt), 1000);

live.start();
window.hive = { state, live, graph, replay, flow, costs };
