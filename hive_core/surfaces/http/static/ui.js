// Small DOM helpers shared by both pages: element building (text is always set as text, never
// parsed as HTML: previews and status texts come from agents), toasts, two-click confirms, the
// agent chips, time and money formatting, and a once-per-frame scheduler.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "value") el.value = v;
      else el.setAttribute(k, v === true ? "" : v);
    }
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// One callback per animation frame, however many times it is asked for in between; with `minGap`
// (ms), at most one per minGap (a busy hive redraws its tables ten times a second, not sixty).
export function frameBatcher(fn, minGap = 0) {
  let queued = false;
  let last = -Infinity;
  const run = (t) => {
    if (t - last < minGap) {
      requestAnimationFrame(run);
      return;
    }
    queued = false;
    last = t;
    fn();
  };
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(run);
  };
}

const toastBox = () => document.getElementById("toasts");

// A toast: `kind` is "error" or "info"; errors stay longer. At most 5 on screen.
export function toast(text, kind = "info") {
  const box = toastBox();
  if (!box) return;
  const el = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  el.addEventListener("click", () => el.remove());
  box.append(el);
  while (box.children.length > 5) box.firstElementChild.remove();
  setTimeout(() => el.remove(), kind === "error" ? 9000 : 3500);
}

// Two-click confirm: the first click arms the button for 4 s ("confirm kill?"), the second runs.
// Keyed, so a row re-rendered between the clicks stays armed.
const armed = new Map();
export function isArmed(key) {
  const t = armed.get(key);
  return t !== undefined && performance.now() - t < 4000;
}
export function arm(key, onExpire) {
  armed.set(key, performance.now());
  setTimeout(() => {
    if (!isArmed(key)) {
      armed.delete(key);
      onExpire?.();
    }
  }, 4100);
}
export function disarm(key) {
  armed.delete(key);
}

export function shortSha(sha) {
  return sha ? sha.slice(0, 7) : "";
}

export function money(usd) {
  if (usd === undefined || usd === null) return "";
  if (usd < 0.01 && usd > 0) return "<$0.01";
  return usd >= 100 ? `$${usd.toFixed(0)}` : `$${usd.toFixed(2)}`;
}

export function tokens(n) {
  if (n === undefined || n === null) return "";
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${Math.round(n / 1e3)}k`;
  return String(n);
}

// A time as the daemon may send it: an RFC 3339 string, or a number of seconds since the epoch
// (reminder_added's due_at). Milliseconds, or NaN.
export function timeMs(t) {
  if (typeof t === "number") return t < 1e12 ? t * 1000 : t;
  return Date.parse(t);
}

export function clock(iso) {
  if (iso === undefined || iso === null || iso === "") return "";
  const d = new Date(timeMs(iso));
  if (Number.isNaN(d.getTime())) return iso;
  return d.toTimeString().slice(0, 8);
}

// "12s", "4m", "3h", "2d" since an RFC 3339 time (or until it, with a leading "in ").
export function ago(iso, now = Date.now()) {
  if (iso === undefined || iso === null || iso === "") return "";
  const t = timeMs(iso);
  if (Number.isNaN(t)) return "";
  const s = Math.round((now - t) / 1000);
  const a = Math.abs(s);
  const txt = a < 60 ? `${a}s` : a < 3600 ? `${Math.floor(a / 60)}m` : a < 86400 ? `${Math.floor(a / 3600)}h` : `${Math.floor(a / 86400)}d`;
  return s < 0 ? `in ${txt}` : txt;
}

export function durationMs(ms) {
  if (ms === undefined || ms === null) return "";
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)}s`;
  return `${Math.floor(ms / 60000)}m${Math.round((ms % 60000) / 1000)}s`;
}

// The one state word of a status row, as the graph and the tables colour it.
export function agentState(row) {
  if (!row) return "gone";
  if (row.transient) return "transient";
  if (row.failed) return "failed";
  if (row.paused) return "paused";
  return row.running ? "running" : "stopped";
}

// The chips of one agent (same on the dashboard and the agent page).
export function chips(row, extra = {}) {
  const out = [];
  const chip = (cls, text, title) => out.push(h("span", { class: `chip ${cls}`, title }, text));
  if (row.transient) chip("transient", row.transient, "an operation is under way");
  if (row.failed) chip("failed", "failed", extra.crashNote || "the agent failed");
  else chip(row.running ? "running" : "stopped", row.running ? "running" : "stopped");
  if (row.paused) chip("paused", row.budget?.paused ? "paused: budget" : "paused", row.paused_reason || (row.budget?.paused ? "paused by its budget" : "paused"));
  if (extra.crashes) chip("crash", `crash ×${extra.crashes}`, extra.crashNote || "crashed");
  if (row.needs_update) chip("warn", "update", "needs update");
  if (row.needs_login) chip("warn", "login", "needs login");
  if (row.pending_reminders) chip("reminders", `rem ${row.pending_reminders}`, `${row.pending_reminders} pending reminder(s)`);
  if (extra.budgetWarning) chip("warn", "budget", extra.budgetWarning);
  return out;
}

// A budget bar: spent against limit, amber from 80 %, red at 100 %.
export function budgetBar(budget) {
  if (!budget) return null;
  const limit = budget.limit_usd;
  const spent = budget.spent_usd ?? 0;
  const frac = limit ? Math.min(spent / limit, 1) : 0;
  const level = !limit ? "none" : spent >= limit ? "over" : spent >= 0.8 * limit ? "high" : "ok";
  const title = `${money(spent)}${limit ? ` of ${money(limit)}` : ""} per ${budget.period}${budget.paused ? " (paused by budget)" : ""}`;
  return h("span", { class: `budget ${level}`, title },
    h("span", { class: "bar" }, h("span", { class: "fill", style: `width:${(frac * 100).toFixed(1)}%` })),
    h("span", { class: "txt" }, limit ? `${Math.round((spent / limit) * 100)}%` : money(spent)));
}

// The lifecycle buttons of one agent. Each carries data-verb and data-name; one delegated click
// handler (lifecycle.js) runs them.
export function lifecycleButtons(row, confirmKey) {
  const b = (verb, label, title, danger = false) => {
    const key = `${verb}:${row.name}`;
    const hot = danger && isArmed(key);
    return h("button", {
      class: `btn small ${verb}${danger ? " danger" : ""}${hot ? " armed" : ""}`,
      dataset: { verb, name: row.name, confirm: danger ? "1" : "" },
      title, "data-testid": `${verb}-${row.name}`,
    }, hot ? `confirm ${verb}?` : label);
  };
  void confirmKey;
  const out = [];
  if (row.running) out.push(b("stop", "■ stop", "graceful stop"), b("restart", "↻", "restart"));
  else out.push(b("start", "▶ start", "start"));
  out.push(row.paused ? b("resume", "▷ resume", "resume turns") : b("pause", "❚❚", "pause: no new turns"));
  out.push(b("kill", "✕", "kill at once (asks to confirm)", true));
  return out;
}
