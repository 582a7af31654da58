// The agent page's live terminal: one line per activity of the agent's turns (turn start, text,
// tool calls, sub-agents, turn end with duration and cost), plus what happens to it (messages in,
// crashes, state changes).
//
// Rules kept here:
// - Lines are keyed by seq: a backfill that arrives after live lines merges in order, nothing
//   twice. At most MAX lines are kept; the DOM is written once per frame.
// - It follows the bottom unless the operator scrolled up (or unticked "follow").

import { h, clock, durationMs, money, tokens } from "./ui.js";

const MAX = 1500;

export function describe(ev, name) {
  if (ev.kind === "agent_activity") {
    if (ev.status_text !== undefined && !ev.activity) return { cls: "k-status", text: `status: ${ev.status_text}` };
    const a = ev.activity || {};
    switch (a.kind) {
      case "turn_start": return { cls: "k-turn_start", text: "── turn ─────────────────────────" };
      case "tool_use": return { cls: "k-tool_use", text: `  ▸ ${a.tool}${a.subagent ? `   (sub-agent ${a.subagent})` : ""}` };
      case "subagent_start": return { cls: "k-subagent_start", text: `  » sub-agent ${a.id} starts${a.description ? `: ${a.description}` : ""}` };
      case "subagent_end": return { cls: "k-subagent_end", text: `  « sub-agent ${a.id} ${a.ok ? "done" : "failed"}` };
      case "text": return { cls: "k-text", text: `  ${a.preview ?? ""}` };
      case "state": return { cls: "k-state", text: `  · ${a.state}` };
      case "turn_end": {
        const u = a.usage || {};
        const parts = [a.ok ? "ok" : a.result_kind || "failed", durationMs(a.duration_ms), money(a.cost_usd),
          u.input_tokens !== undefined ? `${tokens(u.input_tokens)} in / ${tokens(u.output_tokens)} out` : "", a.model || ""];
        return { cls: `k-turn_end ${a.ok ? "ok" : "bad"}`, text: `── end: ${parts.filter(Boolean).join(" · ")}` };
      }
      default: return { cls: "k-state", text: `  · ${a.kind}` };
    }
  }
  if (ev.kind === "sent" && ev.to === name) return { cls: "k-msg", text: `✉ ${ev.from} → ${name}: ${ev.preview ?? ""}` };
  if (ev.kind === "sent" && ev.from === name) return { cls: "k-msg", text: `✉ ${name} → ${ev.to}: ${ev.preview ?? ""}` };
  if (ev.kind === "container_crash") return { cls: "k-turn_end bad", text: `✖ crash${ev.note ? `: ${ev.note}` : ""}` };
  if (ev.kind === "transient_set") return { cls: "k-life", text: `… ${ev.transient}` };
  if (ev.kind === "restart_given_up") return { cls: "k-turn_end bad", text: `✖ restart given up after ${ev.crashes} crashes` };
  if (ev.kind === "container_removed") return { cls: "k-turn_end bad", text: "✖ removed" };
  if (ev.kind === "budget_warning") return { cls: "k-status", text: "budget warning" };
  return null;
}

export function concerns(ev, name) {
  if (ev.kind === "sent") return ev.from === name || ev.to === name;
  return ev.agent === name && describe(ev, name) !== null;
}

export class Terminal {
  constructor(box, followBox, name) {
    Object.assign(this, { box, followBox, name });
    this.lines = []; // {seq, at, cls, text}, in seq order
    this.seqs = new Set();
    this.pending = [];
    this.queued = false;
    box.addEventListener("scroll", () => {
      const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 6;
      if (followBox.checked !== atBottom) followBox.checked = atBottom;
    });
    followBox.addEventListener("change", () => { if (followBox.checked) box.scrollTop = box.scrollHeight; });
  }

  line(ev) {
    const d = describe(ev, this.name);
    return d && { seq: ev.seq, at: ev.at, ...d };
  }

  push(ev) {
    if (this.seqs.has(ev.seq)) return;
    const l = this.line(ev);
    if (!l) return;
    this.seqs.add(ev.seq);
    this.lines.push(l);
    this.pending.push(l);
    this.trim();
    this.schedule();
  }

  // Older events, possibly overlapping what is shown: merged by seq, then one full redraw.
  backfill(events) {
    const add = [];
    for (const e of events) {
      if (this.seqs.has(e.seq)) continue;
      const l = this.line(e);
      if (!l) continue;
      this.seqs.add(l.seq);
      add.push(l);
    }
    if (!add.length) return;
    this.lines = [...add, ...this.lines].sort((a, b) => a.seq - b.seq);
    this.trim();
    this.pending = [];
    this.box.replaceChildren(...this.lines.map((l) => this.render(l)));
    if (this.followBox.checked) this.box.scrollTop = this.box.scrollHeight;
  }

  trim() {
    if (this.lines.length <= MAX) return;
    for (const l of this.lines.splice(0, this.lines.length - MAX)) this.seqs.delete(l.seq);
  }

  schedule() {
    if (this.queued) return;
    this.queued = true;
    requestAnimationFrame(() => {
      this.queued = false;
      const frag = document.createDocumentFragment();
      for (const l of this.pending.splice(0)) frag.append(this.render(l));
      this.box.append(frag);
      const extra = this.box.childElementCount - MAX;
      for (let i = 0; i < extra; i++) this.box.firstElementChild.remove();
      if (this.followBox.checked) this.box.scrollTop = this.box.scrollHeight;
    });
  }

  render(l) {
    return h("div", { class: `tl ${l.cls}`, "data-seq": l.seq }, h("span", { class: "t" }, clock(l.at)), l.text);
  }
}
