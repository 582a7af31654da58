// The cost panel: per agent today / 7 d / 30 d, the last seven days day by day, its budget; and
// the week's most expensive threads. From POST /api/costs (the host verb `costs`).
//
// Rules kept here:
// - No polling: the panel is fetched at load (and after a re-sync), and again when a turn ends
//   (`agent_activity` turn_end) or a status row's cost of today moved (the daemon publishes the
//   row once the turn is recorded, which can be after the turn_end event went out).
// - Refreshes coalesce: one set of requests in flight, at most one more queued behind it, and no
//   more often than once per MIN_GAP ms, however many turns end.
// - One refresh is 7 `costs` requests in parallel, each `since` a UTC midnight of the last seven
//   days (the daemon's budget days are UTC days); a day's cost is the difference of two of them.
//   The oldest also asks `by_thread` (the week's threads).
// - Agents without a turn in 30 days are counted, not listed.
// - The answer's budgets fill the rows that have none yet (every status row carries the cost
//   keys now, but a page may hold an older row): see dashboard.js.

import { call } from "./api.js";
import { h, budgetBar, clock, money } from "./ui.js";

const DAY = 86400000;
const DAYS = 7;
const MIN_GAP = 1000;
const THREADS = 6;
const WEEKDAY = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

const rfc3339 = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

export class CostPanel {
  constructor(box, rowOf, onBudgets) {
    this.box = box;
    this.rowOf = rowOf; // name -> the live status row (budget bars follow the stream)
    this.onBudgets = onBudgets; // told each answer's budgets: Map name -> budget
    this.data = null;
    this.inflight = false;
    this.again = false;
    this.last = -Infinity;
    this.timer = null;
    this.today = new Map(); // name -> today's cost as the panel shows it
  }

  // Ask for a refresh (coalesced).
  want() {
    if (this.inflight) { this.again = true; return; }
    const wait = this.last + MIN_GAP - performance.now();
    if (wait > 0) {
      if (!this.timer) this.timer = setTimeout(() => { this.timer = null; this.want(); }, wait);
      return;
    }
    this.fetch();
  }

  // A status row arrived: refresh if it is an agent the panel has not seen (a spawn: it counts
  // among the quiet ones), or if it says today's cost is not what the panel shows.
  rowChanged(row) {
    if (!row) return;
    if (this.data && !this.today.has(row.name)) { this.want(); return; }
    if (typeof row.cost_usd !== "number") return;
    if (Math.abs((this.today.get(row.name) ?? 0) - row.cost_usd) > 1e-7) this.want();
  }

  async fetch() {
    this.inflight = true;
    this.last = performance.now();
    const now = new Date();
    const midnight = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
    const starts = Array.from({ length: DAYS }, (_, i) => midnight - i * DAY);
    try {
      const answers = await Promise.all(starts.map((ms, i) =>
        call("costs", i === DAYS - 1 ? { since: rfc3339(ms), by_thread: true } : { since: rfc3339(ms) })));
      this.data = digest(starts, answers);
      this.today = new Map(this.data.agents.map((a) => [a.agent, a.days[0]]));
      this.error = null;
      this.onBudgets?.(new Map(this.data.agents.filter((a) => a.budget).map((a) => [a.agent, a.budget])));
    } catch (e) {
      this.error = e.message;
    } finally {
      this.inflight = false;
      this.render();
      if (this.again) { this.again = false; this.want(); }
    }
  }

  render() {
    const box = this.box;
    const d = this.data;
    const head = box.querySelector(".costs-head");
    const agentsBox = box.querySelector(".costs-agents");
    const threadsBox = box.querySelector(".costs-threads");
    if (!d) {
      agentsBox.replaceChildren(h("div", { class: "muted empty" }, this.error ? `costs: ${this.error}` : "loading…"));
      return;
    }
    const sum = (f) => d.agents.reduce((s, a) => s + f(a), 0);
    head.replaceChildren(
      h("span", { "data-total": "today" }, "today ", h("b", null, money(sum((a) => a.days[0])))),
      h("span", { "data-total": "7d" }, "7 d ", h("b", null, money(sum((a) => a.d7)))),
      h("span", { "data-total": "30d" }, "30 d ", h("b", null, money(sum((a) => a.d30)))),
      h("span", { class: "muted", title: this.error ? `last refresh failed: ${this.error}` : "" },
        this.error ? "stale" : `as of ${clock(d.at)}`));
    const listed = d.agents.filter((a) => a.turns30 > 0 || a.d30 > 0);
    const quiet = d.agents.length - listed.length;
    const peak = Math.max(1e-9, ...listed.flatMap((a) => a.days));
    const dayTitle = (i) => {
      const t = new Date(d.starts[i]);
      return `${WEEKDAY[t.getUTCDay()]} ${t.toISOString().slice(5, 10)}`;
    };
    const table = h("table", { class: "costs" },
      h("thead", null, h("tr", null,
        h("th", null, "agent"), h("th", { class: "num" }, "today"), h("th", { class: "num" }, "7 d"),
        h("th", { class: "num" }, "30 d"), h("th", { class: "num", title: "turns in 30 days" }, "turns"),
        h("th", { title: `per UTC day, ${dayTitle(DAYS - 1)} to ${dayTitle(0)}` }, "last 7 days"), h("th", null, "budget"))),
      h("tbody", null, ...listed.map((a) => h("tr", { "data-cost-agent": a.agent },
        h("td", { class: "name" }, h("a", { href: `/agents/${encodeURIComponent(a.agent)}` }, a.agent)),
        h("td", { class: "num today" }, money(a.days[0])),
        h("td", { class: "num d7" }, money(a.d7)),
        h("td", { class: "num d30" }, money(a.d30)),
        h("td", { class: "num muted" }, String(a.turns30)),
        h("td", null, h("span", { class: "days" }, ...a.days.slice().reverse().map((c, j) => {
          const i = DAYS - 1 - j;
          return h("span", { class: `day${i === 0 ? " today" : ""}`, "data-day": i, title: `${dayTitle(i)}: ${money(c) || "$0.00"}` },
            h("span", { class: "fill", style: `height:${c > 0 ? Math.max(8, Math.round((c / peak) * 100)) : 0}%` }));
        }))),
        h("td", { class: "budget-cell" }, budgetBar(this.rowOf(a.agent)?.budget ?? a.budget))))));
    agentsBox.replaceChildren(listed.length ? table : h("div", { class: "muted empty" }, "no turns in 30 days"),
      ...(quiet ? [h("div", { class: "muted quiet" }, `${quiet} agent${quiet === 1 ? "" : "s"} without turns in 30 days`)] : []));
    const threads = d.threads.slice(0, THREADS);
    threadsBox.replaceChildren(h("div", { class: "sub-h" }, "top threads, 7 d"),
      threads.length ? h("ol", { class: "threads" }, ...threads.map((t) => h("li", { "data-thread": t.thread },
        h("span", { class: "cost" }, money(t.cost_usd)),
        h("span", { class: "muted" }, `${t.turns} turn${t.turns === 1 ? "" : "s"}`),
        h("span", { class: "who" }, (t.agents || []).join(", ")),
        h("span", { class: "pv", title: t.first_body || "" }, t.first_body || `#${t.thread}`))))
        : h("div", { class: "muted empty" }, "none"));
  }

  // The live rows changed (budget bars): redraw only if one of them is on the panel.
  rowsChanged(names) {
    if (!this.data) return;
    for (const n of names) if (this.today.has(n)) { this.render(); return; }
  }
}

// Seven cumulative answers (since each midnight, newest first) -> per agent figures.
function digest(starts, answers) {
  const byAgent = new Map();
  answers.forEach((ans, i) => {
    for (const a of ans.agents || []) {
      let e = byAgent.get(a.agent);
      if (!e) {
        e = { agent: a.agent, cum: new Array(starts.length).fill(0), d7: 0, d30: 0, turns30: 0, budget: null };
        byAgent.set(a.agent, e);
      }
      e.cum[i] = a.cost_usd || 0;
      if (i === 0) {
        e.d7 = a.last_7d?.cost_usd || 0;
        e.d30 = a.last_30d?.cost_usd || 0;
        e.turns30 = a.last_30d?.turns || 0;
        e.budget = a.budget ?? null;
      }
    }
  });
  const agents = [...byAgent.values()].map((e) => ({
    ...e, days: e.cum.map((c, i) => Math.max(0, c - (i ? e.cum[i - 1] : 0))),
  }));
  agents.sort((a, b) => b.d7 - a.d7 || b.d30 - a.d30 || a.agent.localeCompare(b.agent));
  return { at: new Date().toISOString(), starts, agents, threads: answers[answers.length - 1].threads || [] };
}
