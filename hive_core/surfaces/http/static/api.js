// Talking to the daemon: JSON reads, verb POSTs, and the live stream kept in step with the
// snapshot.
//
// Rules kept here:
// - Subscribe first, snapshot second: events that arrive while /api/state is in flight are
//   buffered, then those with seq <= snapshot.seq are dropped and the rest applied in order.
//   Nothing is shown twice, nothing is lost.
// - A `lagged` event (or a reconnect) re-fetches the snapshot the same way.
// - Nothing polls. The only timers are the reconnect back-off and a fallback for a server that
//   holds the stream's headers back.
// - Every buffer is bounded: a buffer that overflows during a fetch is thrown away and the
//   snapshot fetched again after.

import { toast } from "./ui.js";

export class ApiError extends Error {
  constructor(message, code, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

export async function getJSON(url) {
  const r = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  if (!r.ok) throw new ApiError(`${url}: HTTP ${r.status}`, "http", r.status);
  return r.json();
}

// POST /api/VERB with the verb's fields; resolves to the ok envelope, rejects with ApiError
// carrying the daemon's sentence.
export async function call(verb, fields = {}) {
  let r;
  try {
    r = await fetch(`/api/${verb}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(fields),
    });
  } catch (e) {
    throw new ApiError(`the daemon is not reachable (${e.message})`, "network", 0);
  }
  let env = null;
  try {
    env = await r.json();
  } catch {
    throw new ApiError(`${verb}: HTTP ${r.status} without an answer`, "http", r.status);
  }
  if (!env || env.ok !== true) {
    throw new ApiError(env?.error || `${verb} failed (HTTP ${r.status})`, env?.code || "http", r.status);
  }
  return env;
}

// call() with the error shown to the operator; resolves to the envelope or null.
export async function act(verb, fields, okText) {
  try {
    const env = await call(verb, fields);
    if (okText) toast(okText, "info");
    return env;
  } catch (e) {
    toast(`${verb}: ${e.message}`, "error");
    return null;
  }
}

const BUFFER_MAX = 20000;
const BACKOFF_MIN = 1000;
const BACKOFF_MAX = 30000;

// The live stream. Callbacks:
//   onSnapshot(snap)  after each /api/state (first paint, lagged, reconnect, refresh())
//   onEvent(ev)       each event after the snapshot, in seq order, never twice
//   onConn(state)     "connecting" | "connected" | "reconnecting"
export class Live {
  constructor({ onSnapshot, onEvent, onConn, stateUrl = "/api/state", streamUrl = "/dashboard/stream" }) {
    Object.assign(this, { onSnapshot, onEvent, onConn, stateUrl, streamUrl });
    this.seq = -1;
    this.buffer = [];
    this.buffering = true;
    this.fetching = false;
    this.again = false;
    this.es = null;
    this.backoff = BACKOFF_MIN;
    this.retryTimer = null;
    this.lastEventAt = 0;
  }

  start() {
    this.open();
  }

  open() {
    this.conn("connecting");
    this.buffering = true;
    this.buffer = [];
    const es = new EventSource(this.streamUrl);
    this.es = es;
    let synced = false;
    const sync = () => {
      if (synced || this.es !== es) return;
      synced = true;
      this.refresh();
    };
    // Fetch once the subscription stands; if the server holds its headers back, do not wait
    // for the first ping.
    const fallback = setTimeout(sync, 2000);
    es.onopen = () => {
      clearTimeout(fallback);
      this.backoff = BACKOFF_MIN;
      this.conn("connected");
      sync();
    };
    es.onmessage = (m) => this.receive(m.data);
    es.onerror = () => {
      if (this.es !== es) return;
      clearTimeout(fallback);
      // Our own back-off rather than the browser's fixed retry; the reopen re-syncs.
      es.close();
      this.es = null;
      this.conn("reconnecting");
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.open(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX);
    };
  }

  conn(state) {
    this.connState = state;
    this.onConn?.(state);
  }

  receive(data) {
    let ev;
    try {
      ev = JSON.parse(data);
    } catch {
      return;
    }
    if (!ev || typeof ev.seq !== "number") return;
    this.lastEventAt = Date.now();
    if (ev.kind === "lagged") {
      this.refresh();
      return;
    }
    if (this.buffering) {
      if (this.buffer.length >= BUFFER_MAX) {
        this.buffer = [];
        this.again = true;
      }
      this.buffer.push(ev);
      return;
    }
    if (ev.seq <= this.seq) return;
    this.seq = ev.seq;
    this.onEvent(ev);
  }

  // Re-fetch the snapshot (buffering the stream meanwhile). Calls made while one is in flight
  // fold into one more after it.
  async refresh() {
    if (this.fetching) {
      this.again = true;
      return;
    }
    this.fetching = true;
    this.buffering = true;
    try {
      do {
        this.again = false;
        let snap;
        try {
          snap = await getJSON(this.stateUrl);
        } catch (e) {
          toast(`could not load the hive's state: ${e.message}`, "error");
          break;
        }
        this.seq = snap.seq;
        this.onSnapshot(snap);
        if (this.again) continue;
        const pending = this.buffer;
        this.buffer = [];
        for (const ev of pending) {
          if (ev.seq <= this.seq) continue;
          this.seq = ev.seq;
          this.onEvent(ev);
        }
      } while (this.again);
    } finally {
      this.buffering = false;
      this.fetching = false;
    }
  }
}
