"""A stand-in for the daemon's HTTP surface, to develop and screenshot the dashboard pages.

Rules kept here:
- stdlib only (http.server, threads); it serves the real static dir at the real routes
  (`/`, `/agents/NAME`, `/static/...`) and the endpoints the pages use, with the daemon's shapes
  (spec/dashboard.md): `/api/state`, `/dashboard/stream` (SSE), `/dashboard/history`,
  `/dashboard/state_at`, `/api/activity`, `POST /api/VERB` answering the socket envelope.
- Every change goes through `Hive.emit`, which appends to one event log: the stream, the history
  and `state_at` all read that log, so what the page sees live and in replay agree.
- A script plays a small hive (spawns, messages, tool calls, a sub-agent, questions, approvals, a
  crash); `--history` pre-plays that many seconds in the past so replay has something to show;
  `--rate` adds that many extra events a second (load).

Run: `python tests/pages/mock_server.py --port 8765` then open http://127.0.0.1:8765/.
Tests: `POST /mock/event {"kind": ..., ...}` publishes any event; `POST /mock/pause` stops the
script (`{"paused": false}` resumes).
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

STATIC = Path(__file__).resolve().parents[2] / "hive_core" / "surfaces" / "http" / "static"
NAMES = [
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "kilo",
    "lima",
    "mike",
    "nova",
    "oscar",
    "papa",
    "quinn",
    "romeo",
    "sierra",
    "tango",
    "ursa",
    "victor",
    "whisky",
    "xray",
    "yank",
    "zulu",
] + [f"a{i:03d}" for i in range(300)]
TOOLS = [
    "Bash",
    "Read",
    "Edit",
    "Grep",
    "Write",
    "mcp__hive__send",
    "mcp__hive__recv",
    "WebFetch",
    "Glob",
    "TodoWrite",
]
LINES = [
    "looking at the failing test in broker.py",
    "the lease expires before the ack arrives",
    "done: the migration runs in one transaction",
    "can you review my change to reminders?",
    "PR ready: fixes the off-by-one in history paging",
    "build is green again",
    "I need the forge token rotated",
    "next: the nixos backend bind mounts",
]
DIFF = """diff --git a/agent.toml b/agent.toml
index 3b18e51..a9c2f04 100644
--- a/agent.toml
+++ b/agent.toml
@@ -1,9 +1,11 @@
 [agent]
 name = "carol"
-model = "claude-sonnet-4"
+model = "claude-opus-4"

 [claude]
-turn_timeout = 1800
+turn_timeout = 3600
+rate_limit_wait = 300

 [budget]
-usd_per_day = 5
+usd_per_day = 12
+usd_per_month = 200
"""
MIME = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_row(name: str, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": name,
        "running": True,
        "failed": False,
        "needs_update": False,
        "needs_login": False,
        "deployed_sha": f"{random.getrandbits(48):012x}",
        "pending_reminders": 0,
        "paused": False,
    }
    row.update(kw)
    return row


class Hive:
    def __init__(self, n_agents: int, seed: int) -> None:
        random.seed(seed)
        self.lock = threading.Condition()
        self.offset = 0.0  # pre-played history runs with a clock in the past
        self.seq = 0
        self.log: list[dict[str, Any]] = []
        self.next_id = {"msg": 100, "approval": 1, "question": 1, "reminder": 1}
        self.agents: dict[str, dict[str, Any]] = {}
        for i, name in enumerate(NAMES[:n_agents]):
            row = status_row(
                name,
                active_model=random.choice(["claude-opus-4", "claude-sonnet-4"]),
                cost_usd=round(random.uniform(0.1, 9), 2),
                context_tokens=random.randint(8_000, 160_000),
            )
            if i % 3 == 0:
                row["budget"] = {
                    "period": "day",
                    "limit_usd": 10.0,
                    "spent_usd": round(random.uniform(1, 11), 2),
                    "paused": False,
                }
            if i == 0:
                row["parent"] = "manager"
                row["status_text"] = "reviewing the broker lease change"
            self.agents[name] = row
        names = list(self.agents)
        if len(names) > 3:
            self.agents[names[3]].update(running=False)
        if len(names) > 5:
            self.agents[names[5]].update(paused=True)
            self.agents[names[5]]["budget"] = {
                "period": "day",
                "limit_usd": 5.0,
                "spent_usd": 5.2,
                "paused": True,
            }
        if len(names) > 7:
            self.agents[names[7]].update(running=False, failed=True, status_text="harness exited 1")
        self.base_agents = copy.deepcopy(self.agents)
        self.approvals: dict[int, dict[str, Any]] = {}
        self.questions: dict[int, dict[str, Any]] = {}
        self.reminders: dict[int, dict[str, Any]] = {}
        self.dead: dict[int, dict[str, Any]] = {}
        self.tombstones: dict[str, dict[str, Any]] = {
            "old-bot": {"name": "old-bot", "destroyed_at": iso(self.now() - 86400)}
        }
        self.inbox: list[dict[str, Any]] = []
        self.paused = False
        self._seed_rows()

    def now(self) -> float:
        return time.time() + self.offset

    def new_id(self, kind: str) -> int:
        self.next_id[kind] += 1
        return self.next_id[kind]

    def _seed_rows(self) -> None:
        a = list(self.agents)
        t = self.now()
        self.approvals[1] = {
            "id": 1,
            "agent": a[2 % len(a)],
            "kind": "apply_commit",
            "commit_ref": "a9c2f04e1b7d",
            "fetched_sha": "a9c2f04e1b7d55aa10c3e2f1d0b9a8c7d6e5f4a3",
            "requested_at": iso(t - 340),
            "status": "pending",
            "description": "Switch to opus, longer turn timeout, raise the daily budget to $12.",
        }
        self.approvals[2] = {
            "id": 2,
            "agent": "manager",
            "kind": "spawn",
            "commit_ref": "",
            "requested_at": iso(t - 120),
            "status": "pending",
            "description": "spawn `scout`: reads the forge's open issues and files summaries.",
        }
        self.next_id["approval"] = 2
        self.questions[1] = {
            "id": 1,
            "asker": a[1 % len(a)],
            "to": "operator",
            "question": "Which branch should the release be cut from?",
            "options": ["main", "release-2026.09", "hold the release"],
            "multi": False,
            "asked_at": iso(t - 600),
            "deadline": iso(t + 3000),
        }
        self.questions[2] = {
            "id": 2,
            "asker": a[0],
            "to": "operator",
            "question": "The nightly bench regressed 12% on wake latency. Bisect now, or after the migration lands?",
            "multi": False,
            "asked_at": iso(t - 60),
        }
        self.next_id["question"] = 2
        self.reminders[1] = {
            "id": 1,
            "agent": a[0],
            "message": "check the CI run of PR 214",
            "due_at": iso(t + 900),
            "status": "pending",
            "attempts": 0,
        }
        self.reminders[2] = {
            "id": 2,
            "agent": a[1 % len(a)],
            "message": "rotate logs",
            "file_path": "notes/rotate.md",
            "due_at": iso(t - 30),
            "status": "failed",
            "attempts": 3,
            "last_error": "agent stopped",
        }
        self.next_id["reminder"] = 2
        self.agents[a[0]]["pending_reminders"] = 1
        self.dead[42] = {
            "id": 42,
            "from": a[1 % len(a)],
            "to": "ghost",
            "body": "status report for the week (undeliverable)",
            "sent_at": iso(t - 4000),
            "deliveries": 5,
            "dead_at": iso(t - 3000),
        }
        self.inbox = [
            {
                "id": 90,
                "from": a[0],
                "body": "Morning! The broker lease fix is merged; the chaos run was clean (200 kills).",
                "sent_at": iso(t - 1800),
                "redelivered": False,
            },
            {
                "id": 91,
                "from": "manager",
                "body": "carol asks for a config change (approval #1).",
                "sent_at": iso(t - 340),
                "redelivered": True,
                "in_reply_to": 12,
            },
        ]
        self.base_agents = copy.deepcopy(self.agents)

    # ---- the log ----

    def emit(self, kind: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            self.seq += 1
            ev = {"seq": self.seq, "kind": kind, "at": iso(self.now()), **fields}
            self.log.append(ev)
            if len(self.log) > 300_000:
                del self.log[:100_000]
            self.lock.notify_all()
            return ev

    def row_changed(self, name: str) -> None:
        self.emit("container_state_changed", agent=name, row=copy.deepcopy(self.agents[name]))

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "seq": self.seq,
                "agents": [copy.deepcopy(r) for r in self.agents.values()],
                "approvals": list(self.approvals.values()),
                "questions": list(self.questions.values()),
                "transients": {
                    n: r["transient"] for n, r in self.agents.items() if r.get("transient")
                },
                "tombstones": list(self.tombstones.values()),
                "reminders": list(self.reminders.values()),
                "dead_letters": list(self.dead.values()),
                "inbox": list(self.inbox),
            }

    def history(self, since: int, limit: int) -> dict[str, Any]:
        with self.lock:
            evs = [e for e in self.log if e["seq"] > since][:limit]
            return {"seq": self.seq, "events": evs}

    def state_at(self, seq: int) -> dict[str, Any]:
        with self.lock:
            rows = copy.deepcopy(self.base_agents)
            at = self.log[0]["at"] if self.log else iso(self.now())
            for e in self.log:
                if e["seq"] > seq:
                    break
                at = e["at"]
                if e["kind"] == "container_state_changed":
                    rows[e["agent"]] = e["row"]
                elif e["kind"] == "container_removed":
                    rows.pop(e["agent"], None)
            return {"seq": seq, "at": at, "agents": list(rows.values())}

    # ---- what agents do ----

    def send(self, frm: str, to: str, body: str) -> int:
        mid = self.new_id("msg")
        if to == "operator":
            self.inbox.append(
                {
                    "id": mid,
                    "from": frm,
                    "body": body,
                    "sent_at": iso(self.now()),
                    "redelivered": False,
                }
            )
            self.inbox = self.inbox[-50:]
        self.emit("sent", id=mid, **{"from": frm}, to=to, preview=body[:200], size=len(body))
        if to in self.agents and self.agents[to]["running"]:
            self.emit("delivered", to=to, ids=[mid])
        return mid

    def activity(self, agent: str, **act: Any) -> None:
        self.emit("agent_activity", agent=agent, activity=act)

    def running(self) -> list[str]:
        return [
            n
            for n, r in self.agents.items()
            if r["running"] and not r["paused"] and not r.get("transient")
        ]


def script(h: Hive):
    """The scripted hive: yields seconds to wait between steps (forever)."""
    tick = 0
    spawned = 0
    while True:
        tick += 1
        live = h.running()
        if live:
            a = random.choice(live)
            h.activity(a, kind="turn_start")
            yield 0.15
            sub = None
            if tick % 4 == 0:
                sub = f"t{tick}"
                h.activity(a, kind="subagent_start", id=sub, description="explore the test suite")
            for _ in range(random.randint(1, 4)):
                h.activity(
                    a,
                    kind="tool_use",
                    tool=random.choice(TOOLS),
                    **({"subagent": sub} if sub else {}),
                )
                yield 0.2
            if sub:
                h.activity(a, kind="subagent_end", id=sub, ok=True)
            h.activity(a, kind="text", preview=random.choice(LINES))
            to = random.choice([n for n in h.agents if n != a] + ["operator", "manager"])
            h.send(a, to, random.choice(LINES))
            yield 0.1
            h.activity(
                a,
                kind="turn_end",
                ok=True,
                result_kind="ok",
                duration_ms=random.randint(800, 40000),
                usage={
                    "input_tokens": random.randint(2000, 9000),
                    "output_tokens": random.randint(100, 2000),
                    "cache_read_input_tokens": random.randint(10000, 90000),
                },
                cost_usd=round(random.uniform(0.01, 0.4), 4),
                model=h.agents[a].get("active_model", "claude-sonnet-4"),
            )
        if tick % 3 == 0:
            h.send("manager", random.choice(list(h.agents)), "status? reply with one line")
        if tick % 5 == 0:
            h.activity("claude-1f3a9c2e", kind="tool_use", tool=random.choice(TOOLS))
        if tick % 9 == 0 and spawned < 8:
            name = f"w{tick}"
            spawned += 1
            h.agents[name] = status_row(name, running=False, parent="manager", transient="starting")
            h.row_changed(name)
            h.emit("transient_set", agent=name, transient="starting")
            yield 0.6
            h.agents[name].update(running=True)
            del h.agents[name]["transient"]
            h.emit("transient_cleared", agent=name, transient="starting")
            h.row_changed(name)
        if tick % 13 == 0:
            victims = [n for n in h.agents if n.startswith("w")]
            if victims:
                v = victims[0]
                del h.agents[v]
                h.emit("container_removed", agent=v)
                h.tombstones[v] = {"name": v, "destroyed_at": iso(h.now())}
                h.emit("tombstone_added", agent=v)
        if tick % 11 == 0 and live:
            v = random.choice(live)
            h.emit("container_crash", agent=v, note="harness exited with status 137 (killed)")
            h.agents[v].update(running=False, failed=True)
            h.row_changed(v)
            yield 1.0
            h.agents[v].update(running=True, failed=False)
            h.row_changed(v)
        if tick % 41 == 0 and live:
            qid = h.new_id("question")
            a = random.choice(live)
            q = {
                "id": qid,
                "asker": a,
                "to": "operator",
                "question": f"May I delete the stale branch feature-{tick}?",
                "options": ["yes", "no"],
                "multi": False,
                "asked_at": iso(h.now()),
            }
            h.questions[qid] = q
            h.emit("question_added", id=qid, asker=a, to="operator", question=q["question"])
        if tick % 67 == 0 and live:
            aid = h.new_id("approval")
            a = random.choice(live)
            h.approvals[aid] = {
                "id": aid,
                "agent": a,
                "kind": "apply_commit",
                "commit_ref": f"b{tick:011x}",
                "requested_at": iso(h.now()),
                "status": "pending",
                "description": f"{a}: tighten the turn timeout",
            }
            h.emit("approval_added", id=aid, agent=a, approval_kind="apply_commit")
        if tick % 7 == 0 and live:
            rid = h.new_id("reminder")
            a = random.choice(live)
            h.reminders[rid] = {
                "id": rid,
                "agent": a,
                "message": "follow up on the review",
                "due_at": iso(h.now() + 600),
                "status": "pending",
                "attempts": 0,
            }
            h.emit(
                "reminder_added", id=rid, agent=a, due_at=h.now() + 600
            )  # a float, as hive_wire.events has it
        yield 0.4


def run_script(h: Hive, history: float) -> None:
    gen = script(h)
    h.offset = -history
    while h.offset < 0:  # pre-play the past
        with h.lock:
            h.offset += next(gen)
    h.offset = 0.0
    while True:
        if h.paused:
            time.sleep(0.2)
            continue
        with h.lock:
            wait = next(gen)
        time.sleep(wait)


def run_load(h: Hive, rate: float) -> None:
    """`rate` extra events a second, in batches every 20 ms: tool calls and messages."""
    if rate <= 0:
        return
    while True:
        time.sleep(0.02)
        if h.paused:
            continue
        with h.lock:
            names = list(h.agents)
            for _ in range(max(1, int(rate * 0.02))):
                a = random.choice(names)
                if random.random() < 0.5:
                    h.activity(a, kind="tool_use", tool=random.choice(TOOLS))
                else:
                    h.send(a, random.choice(names), random.choice(LINES))


class Handler(BaseHTTPRequestHandler):
    hive: Hive
    activity_endpoint = True
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet
        pass

    def reply(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def json(self, obj: Any, status: int = 200) -> None:
        self.reply(status, json.dumps(obj).encode())

    def do_GET(self) -> None:
        u = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        path = u.path
        if path == "/":
            return self.file(STATIC / "index.html")
        if path.startswith("/agents/"):
            return self.file(STATIC / "agent.html")
        if path.startswith("/static/"):
            target = (STATIC / unquote(path[len("/static/") :])).resolve()
            if STATIC.resolve() not in target.parents:
                return self.json({"error": "no"}, 404)
            return self.file(target)
        if path == "/api/state":
            return self.json(self.hive.snapshot())
        if path == "/dashboard/history":
            limit = min(int(q.get("limit", 500)), 5000)
            return self.json(self.hive.history(int(q.get("since_seq", 0)), limit))
        if path == "/dashboard/state_at":
            return self.json(self.hive.state_at(int(q.get("seq", 0))))
        if path == "/api/activity" and self.activity_endpoint:
            agent, limit = q.get("agent", ""), int(q.get("limit", 200))
            with self.hive.lock:
                evs = [
                    e
                    for e in self.hive.log
                    if e["kind"] == "agent_activity" and e.get("agent") == agent
                ][-limit:]
                return self.json({"seq": self.hive.seq, "activity": evs})
        if path == "/dashboard/stream":
            return self.stream()
        self.json(
            {"version": 1, "ok": False, "error": f"no route {path}", "code": "not_found"}, 404
        )

    def file(self, p: Path) -> None:
        if not p.is_file():
            return self.json({"error": "not found"}, 404)
        self.reply(200, p.read_bytes(), MIME.get(p.suffix, "application/octet-stream"))

    def stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        h = self.hive
        last = int(self.headers.get("Last-Event-ID") or 0) or h.seq
        try:
            self.wfile.write(b": hello\n\n")
            self.wfile.flush()
            while True:
                with h.lock:
                    if h.seq <= last:
                        h.lock.wait(15)
                    new = [e for e in h.log[-(h.seq - last) :]] if h.seq > last else []
                if not new:
                    self.wfile.write(b": ping\n\n")
                else:
                    if len(new) > 5000:
                        new = [{"seq": new[-1]["seq"], "kind": "lagged", "at": iso(h.now())}]
                    self.wfile.write(
                        "".join(f"id: {e['seq']}\ndata: {json.dumps(e)}\n\n" for e in new).encode()
                    )
                    last = new[-1]["seq"]
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b"{}"
        if self.path == "/mock/pause":
            self.hive.paused = json.loads(raw or b"{}").get("paused", True)
            return self.json({"version": 1, "ok": True})
        if self.path == "/mock/event":
            ev = json.loads(raw)
            kind = ev.pop("kind")
            return self.json({"version": 1, "ok": True, "event": self.hive.emit(kind, **ev)})
        if not self.path.startswith("/api/"):
            return self.json(
                {"version": 1, "ok": False, "error": "not found", "code": "not_found"}, 404
            )
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            return self.json(
                {
                    "version": 1,
                    "ok": False,
                    "error": "Content-Type must be application/json",
                    "code": "bad_request",
                },
                415,
            )
        try:
            body = json.loads(raw or b"{}")
            with self.hive.lock:
                answer = verb(self.hive, self.path[len("/api/") :], body)
        except Problem as p:
            return self.json(
                {"version": 1, "ok": False, "error": p.args[0], "code": p.code}, p.status
            )
        self.json({"version": 1, "ok": True, **answer})


class Problem(Exception):
    def __init__(self, text: str, code: str, status: int) -> None:
        super().__init__(text)
        self.code, self.status = code, status


def verb(h: Hive, name: str, b: dict[str, Any]) -> dict[str, Any]:
    def agent(n: str) -> dict[str, Any]:
        if n not in h.agents:
            raise Problem(f'agent "{n}" is not managed by this hive', "not_found", 404)
        return h.agents[n]

    def target() -> str:
        names = (b.get("scope") or {}).get("agent_names") or []
        if not names:
            raise Problem("scope: name at least one agent", "bad_request", 400)
        agent(names[0])
        return names[0]

    if name in ("approve", "deny"):
        a = h.approvals.get(b.get("id"))
        if a is None:
            raise Problem(f"no approval #{b.get('id')}", "not_found", 404)
        if a["status"] != "pending":
            raise Problem(f"approval #{a['id']} is already {a['status']}", "conflict", 409)
        a.update(status="approved" if name == "approve" else "denied", resolved_at=iso(h.now()))
        if b.get("note"):
            a["note"] = b["note"]
        h.emit(
            "approval_resolved",
            id=a["id"],
            agent=a["agent"],
            approval_kind=a["kind"],
            status=a["status"],
            **({"note": a["note"]} if a.get("note") else {}),
        )
        return {}
    if name in ("answer", "cancel_question"):
        q = h.questions.get(b.get("id"))
        if q is None or "answer" in q:
            raise Problem(f"no open question #{b.get('id')}", "not_found", 404)
        q.update(answer=b.get("answer", ""), answerer="operator", answered_at=iso(h.now()))
        h.emit("question_resolved", id=q["id"], answer=q["answer"], answerer="operator")
        del h.questions[q["id"]]
        return {}
    if name == "send":
        to, body = b.get("to"), b.get("body")
        if not isinstance(body, str) or not body:
            raise Problem("body: required", "bad_request", 400)
        if to not in h.agents and to not in ("manager", "*"):
            raise Problem(f'no agent "{to}"', "not_found", 404)
        return {"id": h.send("operator", to, body)}
    if name in ("start", "stop"):
        n = target()
        h.emit("transient_set", agent=n, transient=f"{name}ing" if name == "start" else "stopping")
        h.agents[n].update(running=name == "start", failed=False)
        h.emit(
            "transient_cleared", agent=n, transient="starting" if name == "start" else "stopping"
        )
        h.row_changed(n)
        return {}
    if name in ("restart", "kill", "rebuild"):
        r = agent(b.get("name", ""))
        if name == "kill" and not r["running"]:
            raise Problem(f'agent "{r["name"]}" is not running', "conflict", 409)
        r.update(running=name != "kill", failed=False)
        h.row_changed(r["name"])
        return {}
    if name == "destroy":
        r = agent(b.get("name", ""))
        del h.agents[r["name"]]
        h.emit("container_removed", agent=r["name"])
        return {}
    if name == "set_paused":
        r = agent(b.get("name", ""))
        r["paused"] = bool(b.get("paused"))
        h.row_changed(r["name"])
        return {}
    if name == "diff":
        a = h.approvals.get(b.get("id"))
        if a is None or a["kind"] != "apply_commit":
            raise Problem("no apply_commit approval with that id", "not_found", 404)
        return {
            "subject": "carol: opus, longer turns, bigger budget",
            "stat": " agent.toml | 10 +++++++---\n 1 file changed, 7 insertions(+), 3 deletions(-)",
            "diff": DIFF,
        }
    if name == "logs":
        r = agent(b.get("name", ""))
        return {
            "lines": [
                f"2026-09-07T12:00:{i:02d}Z {r['name']} harness: turn {i} ok"
                for i in range(min(b.get("lines", 50), 60))
            ]
        }
    if name in ("requeue_dead", "drop_dead"):
        m = h.dead.pop(b.get("id"), None)
        if m is None:
            raise Problem(f"no dead letter #{b.get('id')}", "not_found", 404)
        if name == "requeue_dead":
            h.emit("requeued", to=m["to"], ids=[m["id"]])
        return {}
    if name == "retry_reminder":
        r = h.reminders.get(b.get("id"))
        if r is None:
            raise Problem("no such reminder", "not_found", 404)
        r.update(status="pending")
        return {}
    if name == "urls":
        return {"urls": {"domain": "hive.lab", "home": "http://127.0.0.1/"}}
    raise Problem(f"unknown command {name}", "unknown_command", 404)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--agents", type=int, default=10)
    ap.add_argument("--rate", type=float, default=0, help="extra events per second (load)")
    ap.add_argument("--history", type=float, default=90, help="seconds of history pre-played")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--no-activity-endpoint", action="store_true", help="answer 404 on /api/activity"
    )
    ap.add_argument("--still", action="store_true", help="no script after the pre-played history")
    args = ap.parse_args()
    hive = Hive(min(args.agents, len(NAMES)), args.seed)
    Handler.hive = hive
    Handler.activity_endpoint = not args.no_activity_endpoint
    if args.still:
        hive.paused = True
    threading.Thread(target=run_script, args=(hive, args.history), daemon=True).start()
    threading.Thread(target=run_load, args=(hive, args.rate), daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"mock hive on http://127.0.0.1:{server.server_address[1]}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
