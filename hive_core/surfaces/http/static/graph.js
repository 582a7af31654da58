// The live graph: the hive at the centre, one node per agent (and per hook session, per running
// sub-agent, the manager when it talks), drawn in SVG, laid out by d3-force (vendored, global d3).
//
// Rules kept here:
// - event() only changes data and queues work; the DOM is written in one animation frame per
//   screen refresh (structure, node states, pulses, labels), so 1,000 events/s cost 60 writes/s.
// - Nothing queues without bound: at most PULSES message pulses and LABELS tool labels are on
//   screen (extra ones are dropped and counted), sub-agents and hook sessions are capped.
// - Every node element carries data-node (the agent's name, "hive", the session label, or
//   AGENT:ID for a sub-agent) and data-state. What moves carries whom it is for: a pulse
//   `data-from`/`data-to` while it flies, a tool label `data-for` (the node) and `data-tool`.
// - The manager is drawn once it matters: a message to or from it that is not the daemon's own
//   helper event (system -> manager), or activity it reports. A hive without a manager process
//   shows none.
// - A sub-agent stays at least SUB_MIN_MS on screen before it fades, even when its end came in
//   the same batch as its start (a short Task is still seen).
// - The same code draws live and replayed events: reset(rows) starts from a list of status rows.

import { agentState } from "./ui.js";

const SVGNS = "http://www.w3.org/2000/svg";
const PULSES = 64;
const LABELS = 32;
const RINGS = 48;
const SUBS_PER_AGENT = 6;
const SESSIONS = 24;
const SUB_MIN_MS = 1500;
const FADE_MS = 1600; // .node transition (style.css) plus a frame or two
const FROM_HIVE = new Set(["operator", "system", "reminder", "hive", "*"]);

const svg = (tag, attrs = {}) => {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
};

export class Graph {
  constructor(box, countersBox) {
    this.box = box;
    this.countersBox = countersBox;
    this.root = svg("svg", { class: "graph", "data-testid": "graph-svg" });
    this.gLinks = svg("g", { class: "links" });
    this.gNodes = svg("g", { class: "nodes" });
    this.root.append(this.gLinks, this.gNodes);
    // What moves every frame (pulses, rings, tool labels) lives in an overlay of its own
    // compositing layer, so the nodes are not repainted 60 times a second.
    this.over = svg("svg", { class: "graph-over", "aria-hidden": "true" });
    this.gRings = svg("g", { class: "rings" });
    this.gPulses = svg("g", { class: "pulses" });
    this.gLabels = svg("g", { class: "tool-labels" });
    this.over.append(this.gRings, this.gPulses, this.gLabels);
    box.append(this.root, this.over);
    this.rings = [];
    for (let i = 0; i < RINGS; i++) {
      const c = svg("circle", { class: "ring", visibility: "hidden" });
      this.gRings.append(c);
      this.rings.push({ el: c, n: null });
    }
    this.nodes = new Map();
    this.links = [];
    this.pool = [];
    for (let i = 0; i < PULSES; i++) {
      const c = svg("circle", { r: 2.6, class: "pulse", visibility: "hidden" });
      this.gPulses.append(c);
      this.pool.push({ el: c, busy: false });
    }
    this.pulses = [];
    this.labels = new Map(); // node id -> {el, t0}
    this.hotQueue = new Set(); // nodes that want a ring this frame
    this.approvals = new Map(); // id -> agent
    this.questions = new Map(); // id -> asker
    this.dirty = new Set();
    this.structure = false;
    this.counters = { alive: 0, spawned: 0, tools: 0, messages: 0, done: 0, dropped: 0 };
    this.lastAt = 0;
    this.mode = "live";
    this.framing = false;
    this.resize();
    new ResizeObserver(() => this.resize()).observe(box);
    this.sim = d3.forceSimulation([])
      .force("charge", d3.forceManyBody().strength(() => -40 * Math.min(1, Math.sqrt(40 / Math.max(1, this.nodes.size)))).distanceMax(260))
      .force("link", d3.forceLink([]).id((n) => n.id).distance((l) => (l.target.kind === "sub" ? 16 : this.ring)).strength((l) => (l.target.kind === "sub" ? 1 : 0.08)))
      .force("collide", d3.forceCollide((n) => n.r + 3))
      .force("x", d3.forceX(() => this.w / 2).strength(0.02))
      .force("y", d3.forceY(() => this.h / 2).strength(0.03))
      .alphaMin(0.004)
      .on("tick", () => this.placeAll());
    this.hive = this.add("hive", "hive", "running");
    this.hive.fx = this.w / 2;
    this.hive.fy = this.h / 2;
    this.paintCounters();
  }

  resize() {
    this.w = Math.max(this.box.clientWidth, 200);
    this.h = Math.max(this.box.clientHeight, 200);
    this.ring = Math.min(this.w, this.h) * 0.36;
    this.root.setAttribute("viewBox", `0 0 ${this.w} ${this.h}`);
    this.over.setAttribute("viewBox", `0 0 ${this.w} ${this.h}`);
    if (this.hive) {
      this.hive.fx = this.w / 2;
      this.hive.fy = this.h / 2;
      this.sim.alpha(0.3).restart();
    }
  }

  // ---- nodes ----

  add(id, kind, state, parent) {
    const r = kind === "hive" ? 13 : kind === "sub" ? 3.5 : kind === "session" ? 7 : 6;
    const a = Math.random() * Math.PI * 2;
    const near = parent ? this.nodes.get(parent) : null;
    const n = { id, kind, state, parent, r, x: (near?.x ?? this.w / 2) + Math.cos(a) * 30, y: (near?.y ?? this.h / 2) + Math.sin(a) * 30, hot: 0, marks: "", born: performance.now() };
    n.el = svg("g", { class: `node k-${kind} enter`, "data-node": id, "data-state": state });
    n.dot = svg("circle", { r, class: "dot" });
    n.el.append(n.dot);
    if (kind !== "sub") {
      n.text = svg("text", { class: "name", y: r + 10 });
      n.text.textContent = kind === "hive" ? "hive" : id;
      n.mark = svg("text", { class: "mark", x: r + 1, y: -r + 1 });
      n.el.append(n.text, n.mark);
    }
    const title = svg("title");
    title.textContent = id;
    n.el.append(title);
    this.nodes.set(id, n);
    if (kind !== "sub") this.structureBig = true;
    if (kind !== "hive") this.links.push({ source: parent ?? "hive", target: id, el: svg("line", { class: `link k-${kind}` }) });
    this.structure = true;
    this.schedule();
    return n;
  }

  setState(n, state) {
    if (!n || n.state === state) return;
    n.state = state;
    this.dirty.add(n);
    this.schedule();
  }

  remove(n, fade = true) {
    if (!n || n.kind === "hive" || n.state === "gone" && fade) return;
    for (const s of this.nodes.values()) if (s.parent === n.id) this.remove(s, fade);
    if (!fade) return this.drop(n);
    const wait = n.kind === "sub" ? n.born + SUB_MIN_MS - performance.now() : 0;
    if (wait > 0) {
      if (!n.ending) {
        n.ending = true;
        setTimeout(() => { n.ending = false; if (this.nodes.get(n.id) === n) this.remove(n); }, wait);
      }
      return;
    }
    this.setState(n, "gone");
    setTimeout(() => { if (n.state === "gone") this.drop(n); }, FADE_MS);
  }

  drop(n) {
    if (this.nodes.get(n.id) !== n) return;
    this.nodes.delete(n.id);
    this.labels.get(n.id)?.el.remove();
    this.labels.delete(n.id);
    this.links = this.links.filter((l) => {
      if ((l.target.id ?? l.target) !== n.id) return true;
      l.el.remove();
      return false;
    });
    n.el.remove();
    this.structure = true;
    this.schedule();
  }

  // The agents as a list of status rows: unknown ones appear, missing ones fade out.
  sync(rows, fade = true) {
    const seen = new Set();
    for (const row of rows) {
      seen.add(row.name);
      const n = this.nodes.get(row.name);
      if (!n || n.kind !== "agent" || n.state === "gone") {
        if (n) this.drop(n);
        this.add(row.name, "agent", agentState(row));
      } else this.setState(n, agentState(row));
    }
    for (const n of [...this.nodes.values()]) if (n.kind === "agent" && !seen.has(n.id)) this.remove(n, fade);
  }

  reset(rows, mode) {
    this.mode = mode;
    for (const n of [...this.nodes.values()]) if (n.kind !== "hive") this.drop(n);
    for (const p of this.pulses) {
      p.slot.busy = false;
      p.slot.el.setAttribute("visibility", "hidden");
      p.slot.el.removeAttribute("data-from");
      p.slot.el.removeAttribute("data-to");
    }
    this.pulses = [];
    this.approvals.clear();
    this.questions.clear();
    Object.assign(this.counters, { spawned: 0, tools: 0, messages: 0, done: 0, dropped: 0 });
    this.root.classList.toggle("replaying", mode === "replay");
    for (const g of this.rings) { g.n = null; g.el.setAttribute("visibility", "hidden"); }
    this.sync(rows, false);
    this.marksChanged();
  }

  // Markers from the page's state (live): pending approvals by agent, open questions by asker.
  setMarkers(state) {
    if (this.mode !== "live") return;
    this.approvals = new Map(state.pendingApprovals().map((a) => [a.id, a.agent]));
    this.questions = new Map(state.openQuestions(null).map((q) => [q.id, q.asker]));
    this.marksChanged();
  }

  marksChanged() {
    const marks = new Map();
    for (const agent of this.approvals.values()) marks.set(agent, (marks.get(agent) || "") + "!");
    for (const asker of this.questions.values()) marks.set(asker, (marks.get(asker) || "") + "?");
    for (const n of this.nodes.values()) {
      const m = [...new Set(marks.get(n.id) || "")].join("");
      if (m !== n.marks) { n.marks = m; this.dirty.add(n); }
    }
    this.schedule();
  }

  agentNode(name, create) {
    let n = this.nodes.get(name);
    if (n && n.state !== "gone") return n;
    if (!create) return null;
    if (name === "manager") return this.add("manager", "manager", "running");
    const sessions = [...this.nodes.values()].filter((s) => s.kind === "session");
    if (sessions.length >= SESSIONS) this.remove(sessions.sort((a, b) => a.hot - b.hot)[0], false);
    if (n) this.drop(n);
    return this.add(name, "session", "session");
  }

  // `create`: whether this message may bring the manager onto the graph.
  endpoint(name, create) {
    if (FROM_HIVE.has(name)) return this.hive;
    return this.agentNode(name, create && name === "manager");
  }

  // ---- events ----

  event(ev) {
    this.lastAt = Date.now();
    this.lastEventIso = ev.at;
    switch (ev.kind) {
      case "sent": {
        this.counters.messages += 1;
        // The daemon's helper events to the manager (spawned, budget_warning, ...) are not the
        // manager talking: they draw it only if it is already there.
        const talks = ev.from !== "system";
        const a = this.endpoint(ev.from, talks);
        const b = this.endpoint(ev.to, talks);
        if (a && b && a !== b) this.pulse(a, b);
        break;
      }
      case "container_state_changed": {
        const name = ev.agent ?? ev.row?.name;
        const n = this.nodes.get(name);
        if (!n || n.state === "gone" || n.kind !== "agent") {
          if (n) this.drop(n);
          this.add(name, "agent", agentState(ev.row));
          this.counters.spawned += 1;
        } else this.setState(n, agentState(ev.row));
        break;
      }
      case "transient_set": this.setState(this.agentNode(ev.agent), "transient"); break;
      case "container_removed": this.remove(this.nodes.get(ev.agent)); break;
      case "container_crash": {
        const n = this.agentNode(ev.agent);
        if (n) { n.crash = true; this.dirty.add(n); this.schedule(); }
        break;
      }
      case "approval_added": this.approvals.set(ev.id, ev.agent); this.marksChanged(); break;
      case "approval_resolved": this.approvals.delete(ev.id); this.marksChanged(); break;
      case "question_added": this.questions.set(ev.id, ev.asker); this.marksChanged(); break;
      case "question_resolved": this.questions.delete(ev.id); this.marksChanged(); break;
      case "agent_activity": if (ev.activity) this.activity(ev.agent, ev.activity); break;
      default: break;
    }
  }

  activity(agent, a) {
    const n = this.agentNode(agent, true);
    if (!n) return;
    n.hot = performance.now();
    this.hotQueue.add(n);
    switch (a.kind) {
      case "tool_use": {
        this.counters.tools += 1;
        const sub = a.subagent ? this.nodes.get(`${agent}:${a.subagent}`) : null;
        this.label(sub || n, a.tool);
        if (sub) { sub.hot = n.hot; this.hotQueue.add(sub); }
        break;
      }
      case "subagent_start": {
        const id = `${agent}:${a.id}`;
        const subs = [...this.nodes.values()].filter((s) => s.parent === agent);
        if (this.nodes.has(id) || subs.length >= SUBS_PER_AGENT) break;
        const s = this.add(id, "sub", "subagent", agent);
        s.hot = n.hot;
        break;
      }
      case "subagent_end": this.remove(this.nodes.get(`${agent}:${a.id}`)); break;
      case "turn_end":
        if (a.ok) this.counters.done += 1;
        for (const s of [...this.nodes.values()]) if (s.parent === agent) this.remove(s);
        break;
      default: break;
    }
    this.schedule();
  }

  pulse(a, b) {
    const slot = this.pool.find((s) => !s.busy);
    if (!slot) { this.counters.dropped += 1; return; }
    slot.busy = true;
    slot.el.setAttribute("data-from", a.id);
    slot.el.setAttribute("data-to", b.id);
    this.pulses.push({ slot, a, b, t0: performance.now(), dur: 650 });
    this.schedule();
  }

  label(n, text) {
    let l = this.labels.get(n.id);
    if (!l) {
      if (this.labels.size >= LABELS) {
        const [oldId, old] = [...this.labels.entries()].sort((x, y) => x[1].t0 - y[1].t0)[0];
        old.el.remove();
        this.labels.delete(oldId);
      }
      l = { el: svg("text", { class: "tool" }) };
      this.gLabels.append(l.el);
      this.labels.set(n.id, l);
    }
    const tool = String(text ?? "").replace(/^mcp__hive__/, "hive:").slice(0, 28);
    // Crowded, the names are hidden: the label says whose call it is.
    l.el.textContent = this.crowded && n.kind !== "sub" ? `${n.id} ${tool}` : tool;
    l.el.setAttribute("data-for", n.id);
    l.el.setAttribute("data-tool", String(text ?? ""));
    l.t0 = performance.now();
    l.n = n;
  }

  // ---- drawing ----

  schedule() {
    if (this.framing) return;
    this.framing = true;
    requestAnimationFrame((t) => this.frame(t));
  }

  frame(now) {
    this.framing = false;
    if (this.structure) {
      this.structure = false;
      const all = [...this.nodes.values()];
      for (const n of all) if (!n.el.isConnected) this.gNodes.append(n.el);
      for (const l of this.links) if (!l.el.isConnected) this.gLinks.append(l.el);
      // Sub-agents come and go every few seconds: they are placed beside their agent (placeAll),
      // outside the simulation, so they never set the whole layout moving.
      const nodes = all.filter((n) => n.kind !== "sub");
      this.sim.nodes(nodes);
      this.sim.force("link").links(this.links.filter((l) => !String(l.target.id ?? l.target).includes(":")));
      this.crowded = nodes.length > 70;
      this.root.classList.toggle("crowded", this.crowded);
      // Only a new or removed agent shakes the layout; a sub-agent barely nudges it.
      if (this.structureBig) this.sim.alpha(Math.max(this.sim.alpha(), 0.3)).restart();
      else this.placeAll();
      this.structureBig = false;
    }
    for (const n of this.dirty) {
      n.el.setAttribute("data-state", n.state);
      if (n.mark) n.mark.textContent = n.marks;
      n.el.classList.toggle("marked", !!n.marks);
      if (n.crash) {
        n.crash = false;
        n.dot.animate([{ fill: "#ff2a2a", r: n.r * 2.4 }, { fill: "#ff2a2a", r: n.r * 1.4, offset: 0.4 }, { r: n.r }], { duration: 1100, easing: "ease-out" });
      }
    }
    this.dirty.clear();
    let busy = false;
    // Tool-call rings (a pool: nodes beyond it simply get no ring this time) and labels.
    const ringed = new Set();
    for (const g of this.rings) {
      const n = g.n;
      if (!n) continue;
      const p = (now - n.hot) / 900;
      if (!n.hot || p >= 1 || !this.nodes.has(n.id)) { g.n = null; g.el.setAttribute("visibility", "hidden"); continue; }
      ringed.add(n);
      g.el.setAttribute("cx", n.x.toFixed(1));
      g.el.setAttribute("cy", n.y.toFixed(1));
      g.el.setAttribute("r", (n.r + 2 + p * 9).toFixed(1));
      g.el.style.opacity = (0.9 * (1 - p)).toFixed(2);
      busy = true;
    }
    for (const n of this.hotQueue) {
      if (ringed.has(n) || !n.hot) continue;
      const g = this.rings.find((x) => !x.n);
      if (!g) break;
      g.n = n;
      g.el.setAttribute("visibility", "visible");
      busy = true;
    }
    this.hotQueue.clear();
    for (const [id, l] of this.labels) {
      const p = (now - l.t0) / 1800;
      if (p >= 1 || !this.nodes.has(id)) { l.el.remove(); this.labels.delete(id); continue; }
      // A sub-agent's label sits below its dot, so it does not cover its agent's own label.
      l.el.setAttribute("x", String(l.n.x + l.n.r + 4));
      l.el.setAttribute("y", String(l.n.y + (l.n.kind === "sub" ? 10 : -3) - p * 6));
      l.el.style.opacity = String(1 - p * p);
      busy = true;
    }
    // Message pulses.
    const live = [];
    for (const q of this.pulses) {
      const p = (now - q.t0) / q.dur;
      if (p >= 1 || !this.nodes.has(q.a.id) || !this.nodes.has(q.b.id)) {
        q.slot.busy = false;
        q.slot.el.setAttribute("visibility", "hidden");
        q.slot.el.removeAttribute("data-from");
        q.slot.el.removeAttribute("data-to");
        continue;
      }
      const e = p < 0.5 ? 2 * p * p : 1 - (-2 * p + 2) ** 2 / 2;
      q.slot.el.setAttribute("cx", String(q.a.x + (q.b.x - q.a.x) * e));
      q.slot.el.setAttribute("cy", String(q.a.y + (q.b.y - q.a.y) * e));
      q.slot.el.setAttribute("visibility", "visible");
      live.push(q);
    }
    this.pulses = live;
    if (live.length || busy) this.schedule();
    this.paintCounters();
  }

  placeAll() {
    const subs = new Map();
    const many = new Map();
    for (const n of this.nodes.values()) if (n.kind === "sub") many.set(n.parent, (many.get(n.parent) ?? 0) + 1);
    for (const n of this.nodes.values()) {
      if (n.kind !== "sub") continue;
      const p = this.nodes.get(n.parent);
      if (!p) continue;
      const i = subs.get(p) ?? 0;
      subs.set(p, i + 1);
      // Fan out away from the hive, centred on the line hive -> agent.
      const base = Math.atan2(p.y - this.h / 2, p.x - this.w / 2);
      const a = base + (i - (many.get(n.parent) - 1) / 2) * 0.5;
      n.x = p.x + Math.cos(a) * (p.r + 14);
      n.y = p.y + Math.sin(a) * (p.r + 14);
    }
    const pad = 14;
    for (const n of this.nodes.values()) {
      // Kept inside the box, whatever the forces say (200 agents do not fit a ring).
      if (n.x < pad) n.x = pad; else if (n.x > this.w - pad) n.x = this.w - pad;
      if (n.y < pad) n.y = pad; else if (n.y > this.h - pad - 8) n.y = this.h - pad - 8;
    }
    for (const n of this.nodes.values()) n.el.setAttribute("transform", `translate(${n.x.toFixed(1)},${n.y.toFixed(1)})`);
    for (const l of this.links) {
      const s = typeof l.source === "object" ? l.source : this.nodes.get(l.source);
      const t = typeof l.target === "object" ? l.target : this.nodes.get(l.target);
      if (!s || !t) continue;
      l.el.setAttribute("x1", s.x.toFixed(1));
      l.el.setAttribute("y1", s.y.toFixed(1));
      l.el.setAttribute("x2", t.x.toFixed(1));
      l.el.setAttribute("y2", t.y.toFixed(1));
    }
  }

  // Once a second (the page's only timer): the counters, with the last event's age.
  tick(lastLiveAt) {
    this.lastLiveAt = lastLiveAt;
    this.paintCounters();
  }

  paintCounters() {
    const c = this.counters;
    let alive = 0;
    for (const n of this.nodes.values()) if ((n.kind === "agent" || n.kind === "session") && n.state !== "gone") alive += 1;
    c.alive = alive;
    const age = this.mode === "replay" ? (this.lastEventIso ? this.lastEventIso.slice(11, 19) : "–")
      : this.lastLiveAt ? `${Math.max(0, Math.round((Date.now() - this.lastLiveAt) / 1000))}s` : "–";
    const vals = { alive, spawned: c.spawned, tools: c.tools, messages: c.messages, done: c.done, last: age, dropped: c.dropped };
    if (!this.ctrEls) {
      this.ctrEls = {};
      for (const k of Object.keys(vals)) {
        const b = document.createElement("b");
        const s = document.createElement("span");
        s.className = "gc";
        s.dataset.counter = k;
        s.append(`${k} `, b);
        this.countersBox.append(s);
        this.ctrEls[k] = b;
      }
    }
    for (const [k, v] of Object.entries(vals)) {
      const t = String(v);
      if (this.ctrEls[k].textContent !== t) this.ctrEls[k].textContent = t;
    }
    this.ctrEls.dropped.parentElement.hidden = !c.dropped;
  }
}
