// Replay: a scrubber over the retained history, under the graph.
//
// The range runs from the oldest retained seq (GET /dashboard/history?since_seq=0&limit=1) to
// the live seq. Picking a point loads the hive as it was (GET /dashboard/state_at?seq=N), then
// pages forward (GET /dashboard/history?since_seq=..&limit=500) and plays the events by their
// `at` times at 1× to 60×; a gap longer than a second of screen time is skipped.
//
// Rules kept here:
// - Never the whole history: at most two pages are held ahead of the play head; the next page is
//   fetched when the queue runs low, and playback waits for it rather than racing ahead.
// - A newer seek or "Live" makes any answer still in flight from an older one be ignored.
// - Nothing plays while paused; no timer runs outside playback.

import { getJSON } from "./api.js";
import { toast } from "./ui.js";

const PAGE = 500;
const LOW_WATER = 250;
const GAP_MS = 1000; // the longest wait between two events, in screen time
const PER_FRAME = 1500;

export class Replay {
  constructor(box, { enter, event, leave }) {
    Object.assign(this, { box, onEnter: enter, onEvent: event, onLeave: leave });
    this.range = box.querySelector("input[type=range]");
    this.playBtn = box.querySelector("button.play");
    this.stepBtn = box.querySelector("button.step");
    this.liveBtn = box.querySelector("button.live");
    this.speedSel = box.querySelector("select.speed");
    this.pos = box.querySelector(".pos");
    this.active = false;
    this.playing = false;
    this.token = 0;
    this.max = 0;
    this.min = null;
    this.queue = [];
    this.head = 0;
    this.range.addEventListener("input", () => this.showPos(Number(this.range.value), null));
    this.range.addEventListener("change", () => this.seek(Number(this.range.value)));
    this.range.addEventListener("pointerdown", () => this.loadOldest());
    this.range.addEventListener("focus", () => this.loadOldest());
    this.playBtn.addEventListener("click", () => (this.playing ? this.pause() : this.play()));
    this.stepBtn.addEventListener("click", () => this.step());
    this.liveBtn.addEventListener("click", () => this.live());
    this.loadOldest();
  }

  get speed() {
    return Number(this.speedSel.value) || 1;
  }

  async loadOldest() {
    if (this.min !== null || this.loadingOldest) return;
    this.loadingOldest = true;
    try {
      const page = await getJSON("/dashboard/history?since_seq=0&limit=1");
      this.min = page.events?.length ? page.events[0].seq : page.seq;
      this.range.min = String(Math.max(0, this.min - 1));
      this.box.classList.remove("unavailable");
    } catch (e) {
      this.box.classList.add("unavailable");
      this.box.title = `no history: ${e.message}`;
    } finally {
      this.loadingOldest = false;
    }
  }

  // The live seq moved (snapshot or event); paint() shows it (once per redraw, not per event).
  liveSeq(seq) {
    if (seq > this.max) this.max = seq;
  }

  paint() {
    if (this.painted === this.max) return;
    this.painted = this.max;
    this.range.max = String(this.max);
    if (!this.active) {
      this.range.value = String(this.max);
      this.pos.textContent = "live";
    }
  }

  showPos(seq, at) {
    this.pos.textContent = `seq ${seq}${at ? ` · ${at.replace("T", " ").replace(/\.\d+/, "").replace("Z", "")}` : ""}`;
  }

  async seek(seq) {
    const token = ++this.token;
    this.pause();
    this.active = true;
    this.box.dataset.mode = "replay";
    this.queue = [];
    this.head = 0;
    this.cursor = seq;
    this.exhausted = false;
    this.fetching = false;
    let snap;
    try {
      snap = await getJSON(`/dashboard/state_at?seq=${seq}`);
    } catch (e) {
      if (token === this.token) toast(`replay: ${e.message}`, "error");
      return;
    }
    if (token !== this.token) return;
    this.cursor = snap.seq ?? seq;
    this.vt = Date.parse(snap.at) || null;
    this.showPos(this.cursor, snap.at);
    this.onEnter(snap.agents || []);
    await this.more(token);
    if (token === this.token) this.play();
  }

  // Fetch the next page if the queue runs low. Resolves when done (or skipped).
  async more(token) {
    if (this.fetching || this.exhausted || this.queue.length - this.head > LOW_WATER) return;
    this.fetching = true;
    try {
      const page = await getJSON(`/dashboard/history?since_seq=${this.cursor}&limit=${PAGE}`);
      if (token !== this.token) return;
      const evs = (page.events || []).filter((e) => e.seq > this.cursor);
      if (evs.length) this.cursor = evs[evs.length - 1].seq;
      if (evs.length < PAGE) this.exhausted = true;
      spread(evs);
      this.queue = this.queue.slice(this.head).concat(evs);
      this.head = 0;
    } catch (e) {
      if (token === this.token) { toast(`replay: ${e.message}`, "error"); this.exhausted = true; }
    } finally {
      if (token === this.token) this.fetching = false;
    }
  }

  emit(ev) {
    this.onEvent(ev);
    this.range.value = String(ev.seq);
    this.lastShown = ev;
  }

  play() {
    if (!this.active) return;
    this.playing = true;
    this.playBtn.textContent = "❚❚";
    this.box.dataset.playing = "1";
    let last = performance.now();
    const token = this.token;
    const frame = (now) => {
      if (!this.playing || token !== this.token) return;
      const dt = Math.min(now - last, 250);
      last = now;
      if (this.head >= this.queue.length) {
        if (this.exhausted) { this.pause(); this.pos.textContent += " · end"; return; }
        this.more(token);
        requestAnimationFrame(frame);
        return;
      }
      const nextAt = this.queue[this.head]._t;
      if (this.vt === null || Number.isNaN(this.vt)) this.vt = nextAt;
      this.vt += dt * this.speed;
      if (nextAt - this.vt > GAP_MS * this.speed) this.vt = nextAt - GAP_MS * this.speed * 0.25;
      let n = 0;
      while (this.head < this.queue.length && n < PER_FRAME) {
        const ev = this.queue[this.head];
        if (!Number.isNaN(ev._t) && ev._t > this.vt) break;
        this.head += 1;
        n += 1;
        this.emit(ev);
      }
      if (this.lastShown) this.showPos(this.lastShown.seq, this.lastShown.at);
      this.more(token);
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  }

  pause() {
    this.playing = false;
    this.playBtn.textContent = "▶";
    delete this.box.dataset.playing;
  }

  async step() {
    if (!this.active) {
      this.seek(Number(this.range.value) - 1 >= 0 ? Number(this.range.value) - 1 : 0);
      return;
    }
    this.pause();
    const token = this.token;
    if (this.head >= this.queue.length) await this.more(token);
    if (token !== this.token || this.head >= this.queue.length) return;
    const ev = this.queue[this.head++];
    this.vt = ev._t;
    this.emit(ev);
    this.showPos(ev.seq, ev.at);
  }

  live() {
    this.token += 1;
    this.pause();
    if (!this.active) return;
    this.active = false;
    this.queue = [];
    this.head = 0;
    this.box.dataset.mode = "live";
    this.range.value = String(this.max);
    this.pos.textContent = "live";
    this.onLeave();
  }
}

// Play times: `at` has whole seconds, so the events of one second are spread over it rather than
// played in one burst (a group cut by a page boundary is spread a little less evenly).
function spread(evs) {
  let i = 0;
  while (i < evs.length) {
    let j = i;
    while (j < evs.length && evs[j].at === evs[i].at) j++;
    const t = Date.parse(evs[i].at);
    const whole = !/\.\d/.test(evs[i].at || "");
    for (let k = i; k < j; k++) evs[k]._t = whole ? t + ((k - i) / (j - i)) * 1000 : Date.parse(evs[k].at);
    i = j;
  }
}
