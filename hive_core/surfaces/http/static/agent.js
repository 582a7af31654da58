// One agent's page (/agents/NAME): its badges and lifecycle buttons, a live terminal of its
// turns, its loose ends, recent turns with their cost, its messages, and its logs on demand.
//
// Rules kept here:
// - The name comes from location.pathname; the data from /api/state and the stream, as on the
//   dashboard (same state reducer, same sync rules).
// - Backfill is bounded: GET /api/activity?agent=NAME&limit=200 if the daemon serves it, and the
//   last history pages (two without /api/activity, one with) filtered here for this agent.
// - Nothing polls.

import { Live, act, call, getJSON } from "./api.js";
import { HiveState } from "./state.js";
import { keyed, approvalCard, updateApproval, questionCard, updateQuestion } from "./needs.js";
import { installLifecycle } from "./lifecycle.js";
import { Terminal, concerns } from "./terminal.js";
import { h, ago, agentState, budgetBar, chips, clock, durationMs, frameBatcher, isArmed, lifecycleButtons, money, shortSha, tokens } from "./ui.js";

const $ = (id) => document.getElementById(id);
const NAME = decodeURIComponent(location.pathname.replace(/^\/agents\//, "").replace(/\/.*$/, ""));
const state = new HiveState();
const term = new Terminal($("term"), $("term-follow"), NAME);
const TURNS_MAX = 100;
const MSGS_MAX = 150;
const turns = []; // turn_end events, oldest first
const msgs = []; // sent events to/from NAME, oldest first
const seen = new Set(); // seqs in turns/msgs
let backfilled = false;

document.title = `${NAME} · hive`;
$("agent-name").textContent = NAME;

function extraButtons(row) {
  const b = (verb, label, title) => {
    const hot = isArmed(`${verb}:${row.name}`);
    return h("button", { class: `btn small ${verb} danger${hot ? " armed" : ""}`, dataset: { verb, name: row.name, confirm: "1" }, title, "data-testid": `${verb}-${row.name}` },
      hot ? `confirm ${label}?` : label);
  };
  return [b("rebuild", "rebuild", "rebuild its container"), b("destroy", "destroy", "destroy the agent (tombstone)")];
}

function renderHead() {
  const r = state.agents.get(NAME);
  const badges = $("badges");
  document.body.dataset.state = agentState(r);
  if (!r) {
    const t = state.tombstones.get(NAME);
    badges.replaceChildren(h("span", { class: "chip failed" }, t ? `destroyed ${ago(t.destroyed_at)} ago` : "not in this hive"));
    $("life").replaceChildren();
    $("status-line").textContent = "";
    return;
  }
  const crash = state.crash.get(NAME);
  const badge = (cls, text, title) => h("span", { class: `badge ${cls}`, title }, text);
  badges.replaceChildren(...[
    ...chips(r, { crashes: crash?.count, crashNote: crash?.note, budgetWarning: state.budgetWarn.get(NAME) }),
    r.active_model ? badge("model", r.active_model, "model") : null,
    r.context_tokens !== undefined ? badge("ctx", `ctx ${tokens(r.context_tokens)}`, "context tokens of the last turn") : null,
    r.cost_usd !== undefined || r.budget ? badge("cost", money(r.cost_usd ?? 0) || "$0.00", "cost today (UTC)") : null,
    budgetBar(r.budget),
    r.deployed_sha ? badge("sha mono", shortSha(r.deployed_sha), r.deployed_sha) : null,
    r.parent ? h("span", { class: "muted" }, `spawned by ${r.parent}`) : null,
    r.url ? h("a", { href: r.url, target: "_blank", rel: "noopener" }, "url") : null].filter(Boolean));
  badges.dataset.agent = NAME;
  badges.dataset.state = agentState(r);
  $("life").replaceChildren(...lifecycleButtons(r), ...extraButtons(r));
  const bits = [];
  if (r.paused && r.paused_reason) bits.push(`paused: ${r.paused_reason}`);
  if (r.status_text) bits.push(`status: ${r.status_text}${r.status_set_at ? ` (${ago(r.status_set_at)} ago)` : ""}`);
  if (crash?.note) bits.push(`last crash: ${crash.note}`);
  if (r.last_turn_at) bits.push(`last turn ${ago(r.last_turn_at)} ago`);
  $("status-line").textContent = bits.join(" · ");
}

function renderLoose() {
  const approvals = state.pendingApprovals().filter((a) => a.agent === NAME);
  const questions = state.openQuestions(null).filter((q) => q.asker === NAME || q.to === NAME);
  const reminders = [...state.reminders.values()].filter((r) => r.agent === NAME && r.status !== "fired");
  keyed($("approvals"), approvals, (a) => a.id, approvalCard, updateApproval);
  keyed($("questions"), questions, (q) => q.id, questionCard, (card, q) => {
    updateQuestion(card, q);
    card.querySelector(".actions").hidden = q.to !== "operator"; // only the operator's to answer here
  });
  $("reminders").replaceChildren(...reminders.map((r) => h("div", { class: `crow${r.status === "failed" ? " bad" : ""}`, "data-reminder": r.id },
    h("span", { class: "muted" }, `reminder #${r.id}`), h("span", { class: "muted", title: r.due_at }, r.status === "failed" ? "failed" : ago(r.due_at)),
    h("span", { class: "pv" }, r.last_error ? `${r.last_error} · ${r.message}` : r.message),
    r.status === "failed" ? h("button", { class: "btn small retry", onclick: () => act("retry_reminder", { id: r.id }, `retrying #${r.id}`) }, "retry") : null)));
  const n = approvals.length + questions.length + reminders.length;
  $("loose-count").textContent = n || "";
  $("loose-empty").hidden = n > 0;
}

function renderTurns() {
  const tbody = $("turns").tBodies[0];
  tbody.replaceChildren(...turns.slice().reverse().map((ev) => {
    const a = ev.activity;
    const u = a.usage || {};
    return h("tr", { class: a.ok ? "" : "bad", "data-seq": ev.seq },
      h("td", { title: ev.at }, clock(ev.at)), h("td", null, a.ok ? "ok" : a.result_kind || "failed"), h("td", null, durationMs(a.duration_ms)),
      h("td", null, money(a.cost_usd)), h("td", null, tokens(u.input_tokens)), h("td", null, tokens(u.output_tokens)),
      h("td", { class: "muted" }, (a.model || "").replace(/^claude-/, "")));
  }));
  const sum = turns.reduce((s, ev) => s + (ev.activity.cost_usd || 0), 0);
  $("turns-sum").textContent = turns.length ? `${turns.length} shown · ${money(sum)}` : "";
}

function renderMsgs() {
  $("messages").replaceChildren(...msgs.map((ev) => h("div", { class: "crow", "data-msg": ev.id },
    h("span", { class: "muted" }, clock(ev.at)),
    h("span", { class: "who" }, ev.from === NAME ? `→ ${ev.to}` : `← ${ev.from}`),
    h("span", { class: "pv", title: ev.preview }, ev.preview))));
  $("messages-count").textContent = msgs.length || "";
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
}

const dirty = new Set();
const redraw = frameBatcher(() => {
  if (dirty.has("head")) renderHead();
  if (dirty.has("loose")) renderLoose();
  if (dirty.has("turns")) renderTurns();
  if (dirty.has("msgs")) renderMsgs();
  $("seq").textContent = state.seq >= 0 ? `seq ${state.seq}` : "";
  dirty.clear();
});

// Turns and messages from any event (live or backfilled), once each.
function collect(ev) {
  if (seen.has(ev.seq)) return;
  if (ev.kind === "agent_activity" && ev.agent === NAME && ev.activity?.kind === "turn_end") {
    seen.add(ev.seq);
    turns.push(ev);
    turns.sort((a, b) => a.seq - b.seq);
    if (turns.length > TURNS_MAX) turns.splice(0, turns.length - TURNS_MAX);
    dirty.add("turns");
  } else if (ev.kind === "sent" && (ev.from === NAME || ev.to === NAME)) {
    seen.add(ev.seq);
    msgs.push(ev);
    msgs.sort((a, b) => a.seq - b.seq);
    if (msgs.length > MSGS_MAX) msgs.splice(0, msgs.length - MSGS_MAX);
    dirty.add("msgs");
  }
}

async function backfill(seq) {
  const events = [];
  let pages = 2;
  try {
    const got = await getJSON(`/api/activity?agent=${encodeURIComponent(NAME)}&limit=200`);
    for (const e of got.activity || []) events.push(e.kind ? e : { seq: e.seq, at: e.at, kind: "agent_activity", agent: NAME, activity: e.activity ?? e });
    pages = 1;
    $("term-note").textContent = "";
  } catch {
    $("term-note").textContent = "(backfill: recent history only)";
  }
  for (let p = pages; p >= 1; p--) {
    const since = Math.max(0, seq - p * 500);
    try {
      const page = await getJSON(`/dashboard/history?since_seq=${since}&limit=500`);
      for (const e of page.events || []) if (e.seq <= seq && concerns(e, NAME)) events.push(e);
    } catch { break; }
    if (since === 0) break;
  }
  events.sort((a, b) => a.seq - b.seq);
  term.backfill(events.filter((e) => e.seq <= seq));
  for (const e of events) collect(e);
  redraw();
}

const live = new Live({
  onConn: (s) => { $("conn").dataset.state = s; $("conn").textContent = s; },
  onSnapshot: (snap) => {
    state.load(snap);
    if (!backfilled) { backfilled = true; backfill(snap.seq); }
    dirty.add("head").add("loose");
    redraw();
  },
  onEvent: (ev) => {
    state.apply(ev);
    if (state.needRefresh) { state.needRefresh = false; live.refresh(); }
    if (concerns(ev, NAME)) term.push(ev);
    collect(ev);
    if (state.dirtyAgents.has(NAME)) dirty.add("head");
    if (state.dirty.has("approvals") || state.dirty.has("questions") || state.dirty.has("reminders")) dirty.add("loose");
    state.dirty.clear();
    state.dirtyAgents.clear();
    state.dirtyActivity.clear();
    redraw();
  },
});

installLifecycle(document, { redraw: () => { dirty.add("head"); redraw(); } });

$("logs-btn").addEventListener("click", async () => {
  const btn = $("logs-btn");
  btn.disabled = true;
  try {
    const env = await call("logs", { name: NAME, lines: 200 });
    const pre = $("logs");
    pre.textContent = (env.lines || []).join("\n") || "(no lines)";
    pre.hidden = false;
    pre.scrollTop = pre.scrollHeight;
    btn.textContent = "reload";
  } catch (e) {
    $("logs").textContent = `logs: ${e.message}`;
    $("logs").hidden = false;
  } finally {
    btn.disabled = false;
  }
});
if (location.hash === "#logs") $("logs-btn").click();

call("urls", {}).then((env) => { if (env?.urls?.domain) $("hive-name").textContent = env.urls.domain; }).catch(() => {});
setInterval(() => { dirty.add("head"); redraw(); }, 1000 * 15); // ages on screen only; fetches nothing

live.start();
window.hive = { state, live, term };
