// The message flow: a sticky-bottom log of `sent` events.
//
// Rules kept here:
// - Lines are added at most once per frame, whatever the event rate; the DOM holds at most
//   MAX lines and the queue between frames at most MAX (older ones are dropped, and counted).
// - Scrolled to the bottom, the log follows; scrolled up, it stays put and a pill counts the new
//   lines and jumps to the bottom when clicked.
// - Two sources: live and replay. During a replay the live lines keep being collected (bounded)
//   and come back when the page returns to live.

import { h, clock, frameBatcher } from "./ui.js";

const MAX = 250;

function hue(name) {
  let x = 0;
  for (const c of name || "") x = (x * 31 + c.charCodeAt(0)) >>> 0;
  return x % 360;
}

export class Flow {
  constructor(box, pill, modeLabel) {
    Object.assign(this, { box, pill, modeLabel });
    this.mode = "live";
    this.live = []; // ring of live line data (bounded)
    this.pending = [];
    this.unseen = 0;
    this.schedule = frameBatcher(() => this.flush(), 150);
    this.follow = true; // kept by scroll events, so a flush never reads layout before writing
    box.addEventListener("scroll", () => {
      this.follow = this.atBottom();
      if (this.follow) this.setUnseen(0);
    });
    pill.addEventListener("click", () => {
      this.follow = true;
      box.scrollTop = box.scrollHeight;
      this.setUnseen(0);
    });
  }

  atBottom() {
    const b = this.box;
    return b.scrollHeight - b.scrollTop - b.clientHeight < 6;
  }

  setUnseen(n) {
    this.unseen = n;
    this.pill.hidden = n === 0;
    this.pill.textContent = `${n} new ↓`;
  }

  lineOf(ev) {
    if (ev.kind === "sent") return { seq: ev.seq, at: ev.at, from: ev.from, to: ev.to, text: ev.preview ?? "", size: ev.size, id: ev.id };
    if (ev.kind === "message_dead") return { seq: ev.seq, at: ev.at, from: ev.from, to: ev.to, text: `dead after ${ev.deliveries} deliveries`, dead: true, id: ev.id };
    return null;
  }

  // A live event (called for every live event, in any mode).
  liveEvent(ev) {
    const line = this.lineOf(ev);
    if (!line) return;
    this.live.push(line);
    if (this.live.length > MAX) this.live.splice(0, this.live.length - MAX);
    if (this.mode === "live") this.enqueue(line);
  }

  // Older events (a history page read at load), placed before the live lines.
  backfill(events) {
    const first = this.live.length ? this.live[0].seq : Infinity;
    const lines = events.filter((e) => e.seq < first).map((e) => this.lineOf(e)).filter(Boolean);
    if (!lines.length) return;
    this.live = [...lines, ...this.live].slice(-MAX);
    if (this.mode === "live") this.setMode("live");
  }

  replayEvent(ev) {
    if (this.mode !== "replay") return;
    const line = this.lineOf(ev);
    if (line) this.enqueue(line);
  }

  setMode(mode) {
    this.mode = mode;
    this.pending = [];
    this.box.replaceChildren();
    this.follow = true;
    this.setUnseen(0);
    this.modeLabel.textContent = mode === "replay" ? "(replay)" : "";
    this.box.classList.toggle("replaying", mode === "replay");
    if (mode === "live") for (const l of this.live) this.enqueue(l);
  }

  enqueue(line) {
    this.pending.push(line);
    if (this.pending.length > MAX) this.pending.splice(0, this.pending.length - MAX);
    this.schedule();
  }

  flush() {
    if (!this.pending.length) return;
    const follow = this.follow;
    const frag = document.createDocumentFragment();
    const added = this.pending.length;
    // A burst bigger than the log replaces it: render only what will be kept.
    for (const l of this.pending.slice(-MAX)) frag.append(this.render(l));
    this.pending = [];
    this.box.append(frag);
    const extra = this.box.childElementCount - MAX;
    for (let i = 0; i < extra; i++) this.box.firstElementChild.remove();
    // Scrolled at the start of the next frame, when layout is clean: reading scrollHeight now
    // would force a layout of everything changed this frame.
    if (follow) requestAnimationFrame(() => { this.box.scrollTop = this.box.scrollHeight; });
    else this.setUnseen(this.unseen + added);
  }

  render(l) {
    const who = (n) => h("span", { class: "who", style: `color:hsl(${hue(n)} 70% 70%)` }, n);
    const cut = l.size !== undefined && l.size > (l.text?.length ?? 0) ? " …" : "";
    return h("div", { class: `fl${l.dead ? " dead" : ""}`, "data-seq": l.seq, "data-msg": l.id },
      h("span", { class: "t muted" }, clock(l.at)), who(l.from), h("span", { class: "arrow muted" }, "→"), who(l.to),
      h("span", { class: "pv" }, l.text + cut));
  }
}
