// The page's copy of the hive: loaded from /api/state, moved forward by events.
//
// Rules kept here:
// - One reducer for both pages; it only changes data and reports which parts changed
//   (`dirty`), the pages decide what to redraw and redraw at most once per frame.
// - Every optional key of a row may be absent; nothing here assumes one.
// - Events that lack the full row (approval_added, question_added, message_dead) ask for a
//   snapshot re-fetch through `needRefresh`; the caller coalesces them.
// - Lists that grow with traffic (inbox, crashes) are bounded.

const INBOX_MAX = 300;

export class HiveState {
  constructor() {
    this.seq = -1;
    this.agents = new Map(); // name -> status row
    this.approvals = new Map(); // id -> approval row
    this.questions = new Map(); // id -> question row
    this.reminders = new Map(); // id -> reminder row
    this.dead = new Map(); // id -> dead letter
    this.tombstones = new Map(); // name -> row
    this.inbox = []; // operator's messages, oldest first
    this.crash = new Map(); // name -> {count, note, at}
    this.activity = new Map(); // name -> {text, at, state}
    this.budgetWarn = new Map(); // name -> sentence
    this.dirty = new Set();
    this.dirtyAgents = new Set();
    this.dirtyActivity = new Set(); // only the agent's "doing" changed
    this.needRefresh = false;
  }

  touch(...parts) {
    for (const p of parts) this.dirty.add(p);
  }

  touchAgent(name) {
    this.dirtyAgents.add(name);
    this.dirty.add("agents");
  }

  load(snap) {
    this.seq = snap.seq;
    const byKey = (rows, key) => new Map((rows || []).map((r) => [r[key], r]));
    const prevAgents = this.agents;
    this.agents = byKey(snap.agents, "name");
    for (const [name, t] of transientsOf(snap.transients)) {
      const row = this.agents.get(name);
      if (row && !row.transient) row.transient = t;
    }
    this.approvals = byKey(snap.approvals, "id");
    this.questions = byKey(snap.questions, "id");
    this.reminders = byKey(snap.reminders, "id");
    this.dead = byKey(snap.dead_letters, "id");
    this.tombstones = byKey(snap.tombstones, "name");
    // The inbox is peeked: keep what `sent` events added that the snapshot also holds once.
    const ids = new Set((snap.inbox || []).map((m) => m.id));
    const extra = this.inbox.filter((m) => !ids.has(m.id) && m.live);
    this.inbox = [...(snap.inbox || []), ...extra].slice(-INBOX_MAX);
    for (const name of prevAgents.keys()) if (!this.agents.has(name)) this.crash.delete(name);
    this.dirtyAgents = new Set(this.agents.keys());
    this.touch("all", "agents", "approvals", "questions", "reminders", "dead", "inbox", "tombstones");
  }

  // Apply one event; returns nothing. Unknown kinds are ignored (forward compatible).
  apply(ev) {
    this.seq = ev.seq;
    const f = handlers[ev.kind];
    if (f) f(this, ev);
  }

  pendingApprovals() {
    return [...this.approvals.values()].filter((a) => a.status === "pending").sort((a, b) => a.id - b.id);
  }

  openQuestions(to = "operator") {
    return [...this.questions.values()]
      .filter((q) => q.answer === undefined && !q.answered_at && !q.cancelled && (to === null || q.to === to))
      .sort((a, b) => a.id - b.id);
  }

  failedAgents() {
    return [...this.agents.values()].filter((r) => r.failed);
  }
}

// `transients` may come as {name: kind}, as [{agent|name, transient|kind}], or be absent.
function transientsOf(t) {
  if (!t) return [];
  if (Array.isArray(t)) return t.map((x) => [x.agent ?? x.name, x.transient ?? x.kind]).filter(([n, k]) => n && k);
  return Object.entries(t);
}

function row(s, name) {
  return s.agents.get(name);
}

const handlers = {
  sent(s, ev) {
    if (ev.to !== "operator") return;
    if (s.inbox.some((m) => m.id === ev.id)) return;
    s.inbox.push({ id: ev.id, from: ev.from, body: ev.preview ?? "", size: ev.size, sent_at: ev.at, redelivered: false, in_reply_to: ev.in_reply_to, live: true });
    if (s.inbox.length > INBOX_MAX) s.inbox.splice(0, s.inbox.length - INBOX_MAX);
    s.touch("inbox");
  },
  message_dead(s, ev) {
    s.dead.set(ev.id, { id: ev.id, from: ev.from, to: ev.to, body: s.dead.get(ev.id)?.body ?? "", deliveries: ev.deliveries, dead_at: ev.at });
    s.needRefresh = true;
    s.touch("dead");
  },
  requeued(s, ev) {
    let hit = false;
    for (const id of ev.ids || []) hit = s.dead.delete(id) || hit;
    if (hit) s.touch("dead");
  },
  approval_added(s, ev) {
    if (!s.approvals.has(ev.id)) {
      s.approvals.set(ev.id, { id: ev.id, agent: ev.agent, kind: ev.approval_kind, commit_ref: "", requested_at: ev.at, status: "pending", partial: true });
    }
    s.needRefresh = true;
    s.touch("approvals");
    s.touchAgent(ev.agent);
  },
  approval_resolved(s, ev) {
    const a = s.approvals.get(ev.id);
    if (a) Object.assign(a, { status: ev.status, resolved_at: ev.at, note: ev.note ?? a.note });
    s.touch("approvals");
    s.touchAgent(ev.agent);
  },
  question_added(s, ev) {
    if (!s.questions.has(ev.id)) {
      const { seq, kind, at, ...rest } = ev;
      void seq; void kind;
      s.questions.set(ev.id, { multi: false, ...rest, asked_at: at, partial: true });
    }
    s.needRefresh = true;
    s.touch("questions");
  },
  question_resolved(s, ev) {
    const q = s.questions.get(ev.id);
    if (q) Object.assign(q, { answer: ev.answer ?? "", answerer: ev.answerer, answered_at: ev.at });
    s.touch("questions");
  },
  reminder_added(s, ev) {
    s.reminders.set(ev.id, { id: ev.id, agent: ev.agent, message: "", due_at: ev.due_at, status: "pending", attempts: 0 });
    const r = row(s, ev.agent);
    if (r) {
      r.pending_reminders = (r.pending_reminders || 0) + 1;
      s.touchAgent(ev.agent);
    }
    s.touch("reminders");
  },
  reminder_fired(s, ev) {
    const had = s.reminders.get(ev.id);
    s.reminders.delete(ev.id);
    const r = row(s, ev.agent);
    if (r && r.pending_reminders && (!had || had.status === "pending")) {
      r.pending_reminders -= 1;
      s.touchAgent(ev.agent);
    }
    s.touch("reminders");
  },
  reminder_failed(s, ev) {
    const rem = s.reminders.get(ev.id) || { id: ev.id, agent: ev.agent, message: "", due_at: ev.at, attempts: 0 };
    Object.assign(rem, { status: "failed", last_error: ev.error ?? ev.last_error ?? ev.note ?? rem.last_error, attempts: ev.attempts ?? (rem.attempts || 0) + 1 });
    s.reminders.set(ev.id, rem);
    s.touch("reminders");
  },
  transient_set(s, ev) {
    const r = row(s, ev.agent);
    if (r) r.transient = ev.transient;
    s.touchAgent(ev.agent);
  },
  transient_cleared(s, ev) {
    const r = row(s, ev.agent);
    if (r && (!ev.transient || r.transient === ev.transient)) delete r.transient;
    s.touchAgent(ev.agent);
  },
  container_state_changed(s, ev) {
    const name = ev.agent ?? ev.row?.name;
    if (!name || !ev.row) return;
    const old = row(s, name);
    const next = { ...ev.row };
    // Locally accumulated figures survive a row that does not carry them.
    for (const k of ["cost_usd", "context_tokens", "budget"]) if (next[k] === undefined && old?.[k] !== undefined) next[k] = old[k];
    if (next.paused && next.paused_reason === undefined && old?.paused_reason !== undefined) next.paused_reason = old.paused_reason;
    if (!next.failed) s.crash.delete(name);
    s.agents.set(name, next);
    if (!old) s.touch("all");
    s.touchAgent(name);
    s.tombstones.delete(name);
  },
  container_removed(s, ev) {
    s.agents.delete(ev.agent);
    s.crash.delete(ev.agent);
    s.activity.delete(ev.agent);
    s.touchAgent(ev.agent);
    s.touch("all");
  },
  container_crash(s, ev) {
    const c = s.crash.get(ev.agent) || { count: 0 };
    c.count += 1;
    c.note = ev.note ?? c.note;
    c.at = ev.at;
    s.crash.set(ev.agent, c);
    s.touchAgent(ev.agent);
  },
  restart_given_up(s, ev) {
    const c = s.crash.get(ev.agent) || { count: 0 };
    c.note = `restart given up after ${ev.crashes} crashes`;
    s.crash.set(ev.agent, c);
    s.touchAgent(ev.agent);
  },
  tombstone_added(s, ev) {
    s.tombstones.set(ev.agent, { name: ev.agent, destroyed_at: ev.at });
    s.touch("tombstones");
  },
  tombstone_removed(s, ev) {
    s.tombstones.delete(ev.agent);
    s.touch("tombstones");
  },
  budget_warning(s, ev) {
    const spent = ev.spent_usd !== undefined ? `$${Number(ev.spent_usd).toFixed(2)}` : "";
    const limit = ev.limit_usd !== undefined ? ` of $${Number(ev.limit_usd).toFixed(2)}` : "";
    s.budgetWarn.set(ev.agent, `budget warning${spent ? `: ${spent}${limit}` : ""}`);
    s.touchAgent(ev.agent);
  },
  agent_activity(s, ev) {
    const r = row(s, ev.agent);
    if (ev.status_text !== undefined && r) {
      r.status_text = ev.status_text;
      r.status_set_at = ev.at;
      s.touchAgent(ev.agent);
    }
    const a = ev.activity;
    if (!a || !r) return;
    const cur = s.activity.get(ev.agent) || {};
    switch (a.kind) {
      case "turn_start": cur.text = "turn"; cur.busy = true; break;
      case "tool_use": {
        const tool = String(a.tool ?? "").replace(/^mcp__hive__/, "hive:");
        cur.text = a.subagent ? `${tool} (sub)` : tool;
        break;
      }
      case "subagent_start": cur.text = "sub-agent"; break;
      case "text": cur.text = "…"; break;
      case "state": cur.state = a.state; cur.text = a.state; break;
      case "turn_end": {
        cur.text = a.ok ? "idle" : `turn ${a.result_kind || "failed"}`;
        cur.busy = false;
        r.last_turn_at = ev.at;
        if (typeof a.cost_usd === "number") r.cost_usd = (r.cost_usd || 0) + a.cost_usd;
        const u = a.usage || {};
        const ctx = (u.input_tokens || 0) + (u.cache_read_input_tokens ?? u.cache_read_tokens ?? 0) + (u.cache_creation_input_tokens ?? u.cache_creation_tokens ?? 0);
        if (ctx) r.context_tokens = ctx;
        if (a.model) r.active_model = a.model;
        break;
      }
      default: return;
    }
    cur.at = ev.at;
    s.activity.set(ev.agent, cur);
    if (a.kind === "turn_end") s.touchAgent(ev.agent);
    else {
      s.dirtyActivity.add(ev.agent);
      s.dirty.add("activity");
    }
  },
};
