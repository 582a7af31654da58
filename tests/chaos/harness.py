"""The crash harness: kill -9 the daemon at random moments under concurrent load, restart it, and
at the end account for every message (quality.md "Crashes and durability", broker.md
"Guarantees to test").

One run:
- the daemon runs as a subprocess (`python -m hive_core serve`) on short temp dirs, with
  `max_deliveries` high enough that nothing goes dead (this is about loss and order); agents are
  spawned with a process that only sleeps, and this process plays each agent over its socket;
- one thread per client: every agent client sends (to the other agents), receives (`recv`, now and
  then a long-poll) and acks (`ack_turn` with the ids it handled, sometimes bare), and now and
  then dies mid-turn (drops its batch unacked and requeues, as its next boot would); an operator
  client sends on the host socket. Each client records its own history in order: sends answered
  ok (id), sends cut short (unknown outcome), deliveries (id, redelivered), acks answered ok;
- the main thread waits for a random small number of completed requests (`1..max_ops`), SIGKILLs
  the daemon, starts it again, runs `PRAGMA integrity_check` on a fresh sqlite3 connection, and
  lets the clients go on. A client whose request failed (the daemon died under it) waits for the
  restarted daemon and calls `requeue_inflight` before anything else, as a harness does on
  reconnecting after a daemon restart; a client that never noticed the restart carries on (the
  lease lives in the database, so its ack afterwards works);
- after the last kill every client stops sending, acks what it holds, and drains its inbox.

Then `classify` reads the histories and a fresh read of the messages table and counts:
- `lost`: a message (answered ok, or committed although its answer was lost) that its recipient
  never received;
- `after_ack`: delivered again after an ack of it answered ok;
- `unflagged_repeat`: a repeat delivery without `redelivered: true`;
- `out_of_order`: per recipient, among first deliveries, a sender's message before an earlier
  one of the same sender;
- `corrupt`: a delivery whose id, sender, recipient or body does not match the row or the send;
- `unacked_at_end`: a row of an agent's inbox left unacked or dead after the drain;
- `ack_mismatch`: an ack that answered a count other than the batch it acked;
- `error_answer`: any error envelope during the load, or a request left unanswered for 30 s
  (a killed daemon closes its connections at once); none is expected;
- `integrity`: a `PRAGMA integrity_check` that was not ok (after any restart, and at the end);
- `agents`: agent processes left over (orphans of a killed daemon) or missing at the end.
The manager's inbox (its `spawned` helper events) is nobody's load and is not classified.

Used by `tests/chaos/test_chaos.py` (CI: 200 kills) and `bench/chaos.py` (long runs).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from hive_wire.blocking import call_sync
from hive_wire.errors import WireError

from ..procs import agent_pids

CALL_TIMEOUT = 30.0  # one request on a socket
WAIT = 60.0  # any condition a thread waits for
PROBLEMS = (
    "lost",
    "after_ack",
    "unflagged_repeat",
    "out_of_order",
    "corrupt",
    "unacked_at_end",
    "ack_mismatch",
    "error_answer",
    "integrity",
    "agents",
)
PADS = (0, 0, 10, 100, 1000, 6000)  # body padding: rows of varied size, some over a page


# --- the daemon subprocess ------------------------------------------------------------------
def _sleeper() -> list[str]:
    sleep = shutil.which("sleep")
    return [sleep, "3600"] if sleep else [sys.executable, "-c", "import time; time.sleep(3600)"]


class DaemonProcess:
    """`hive-core serve` on `<base>/state` and `<base>/run`, with its own config file and an
    environment free of the caller's `HIVE_*` variables."""

    def __init__(self, base: Path, config: str = "") -> None:
        self.base = base
        self.config = base / "hive.toml"
        self.config.write_text(config)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HIVE_")}
        self.env["HIVE_CONFIG"] = str(self.config)
        self.log = base / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def run_dir(self) -> Path:
        return self.base / "run"

    @property
    def host(self) -> str:
        return str(self.run_dir / "host.sock")

    @property
    def database(self) -> Path:
        return self.base / "state" / "hive.sqlite"

    def agent_socket(self, name: str) -> str:
        return str(self.run_dir / "agents" / name / "mcp.sock")

    def start(self, timeout: float = 20.0) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hive_core",
                    "serve",
                    "--state-dir",
                    str(self.base / "state"),
                    "--run-dir",
                    str(self.run_dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        # Readiness: the host socket answers (bound last, so every other socket is up too).
        wait_until(lambda: self._answers(), "the daemon to serve its host socket", timeout)

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"daemon exited {self.proc.returncode}: {self.log.read_text()[-2000:]}"
            )
        return answers(self.host, {"cmd": "list"})

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=WAIT)

    def ensure_dead(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def answers(path: str, request: dict[str, Any]) -> bool:
    try:
        call_sync(path, request, timeout=5)
    except (OSError, EOFError):
        return False
    return True


def wait_until(cond: Callable[[], object], what: str, timeout: float = WAIT) -> None:
    """Poll `cond` with a deadline: only for a subprocess becoming ready or going away."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def integrity_ok(db: Path) -> bool:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()


def kill_agents(run_dir: Path) -> None:
    """Clean-up after a failed run: end every agent process of `run_dir`."""
    for pid in agent_pids(run_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --- what the threads share ------------------------------------------------------------------
class Interrupted(Exception):
    """A request cut short: the daemon died under it (outcome unknown)."""


class Refused(Exception):
    """The daemon answered an error envelope (recorded; the client requeues to be safe)."""


class Control:
    """Counters the main thread waits on, the daemon generation the clients wait on."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.ops = 0  # requests answered
        self.interrupted = 0  # requests cut short by a kill
        self.generation = 0  # bumped once a restarted daemon serves every socket
        self.failed: BaseException | None = None
        self.stop = threading.Event()

    def add(self, *, ops: int = 0, interrupted: int = 0) -> None:
        with self.cond:
            self.ops += ops
            self.interrupted += interrupted
            self.cond.notify_all()

    def bump(self) -> None:
        with self.cond:
            self.generation += 1
            self.cond.notify_all()

    def fail(self, err: BaseException) -> None:
        with self.cond:
            if self.failed is None:
                self.failed = err
            self.cond.notify_all()

    def wait_ops(self, target: int) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.ops >= target or self.failed is not None, WAIT)
            if self.failed is not None:
                raise RuntimeError("a client thread failed") from self.failed
            if self.ops < target:
                raise AssertionError(f"load stalled at {self.ops} requests (waiting for {target})")

    def wait_past(self, gen: int) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: self.generation > gen, WAIT):
                raise TimeoutError(f"no daemon came back after generation {gen}")


# --- one client --------------------------------------------------------------------------------
Event = tuple[Any, ...]
# ("sent", id, to, seq)         a send answered ok
# ("sent?", to, seq)            a send cut short: it may or may not have been committed
# ("got", id, from, body, redelivered)
# ("acked", ids)                an ack answered ok, for exactly these ids
# ("ack?", ids)                 an ack cut short
# ("mismatch", ids, answer)     an ack answered ok with another count
# ("requeued", n)
# ("error", cmd, code, text)    an error envelope


@attrs.define
class Client:
    label: str  # the sender label in bodies: `<label>:<seq>:<padding>`
    principal: str  # who the daemon says it is (`from`)
    path: str
    recipients: list[str]
    receives: bool  # an agent (sends, receives, acks) or the operator (sends only)
    rng: random.Random
    events: list[Event] = attrs.Factory(list)
    seq: int = 0

    # --- requests ---
    def call(self, ctl: Control, request: dict[str, Any]) -> dict[str, Any]:
        gen = ctl.generation
        try:
            answer = call_sync(self.path, request, CALL_TIMEOUT)
        except TimeoutError:  # a killed daemon closes at once: silence is a hang, not a kill
            self.events.append(
                ("error", request["cmd"], "timeout", f"no answer in {CALL_TIMEOUT:.0f} s")
            )
            raise Refused from None
        except (OSError, EOFError):
            ctl.add(interrupted=1)
            ctl.wait_past(gen)
            raise Interrupted from None
        except WireError as e:
            self.events.append(("error", request["cmd"], e.code, str(e)))
            raise Refused from e
        ctl.add(ops=1)
        return answer

    def send(self, ctl: Control) -> None:
        to = self.rng.choice(self.recipients)
        seq, self.seq = self.seq, self.seq + 1
        body = f"{self.label}:{seq}:" + "x" * self.rng.choice(PADS)
        try:
            answer = self.call(ctl, {"cmd": "send", "to": to, "body": body})
        except Interrupted:
            self.events.append(("sent?", to, seq))
            raise
        self.events.append(("sent", int(answer["id"]), to, seq))

    def recv(self, ctl: Control, max_: int, wait: int) -> list[int]:
        answer = self.call(ctl, {"cmd": "recv", "max": max_, "wait_seconds": wait})
        for m in answer["messages"]:
            self.events.append(("got", m["id"], m["from"], m["body"], m["redelivered"]))
        return [m["id"] for m in answer["messages"]]

    def ack(self, ctl: Control, ids: list[int], bare: bool) -> None:
        request: dict[str, Any] = {"cmd": "ack_turn"} if bare else {"cmd": "ack_turn", "ids": ids}
        try:
            answer = self.call(ctl, request)
        except Interrupted:
            self.events.append(("ack?", tuple(ids)))
            raise
        if answer["acked"] == len(ids):
            self.events.append(("acked", tuple(ids)))
        else:
            self.events.append(("mismatch", tuple(ids), answer))

    def requeue(self, ctl: Control) -> None:
        self.events.append(("requeued", self.call(ctl, {"cmd": "requeue_inflight"})["requeued"]))

    # --- the thread ---
    def run(self, ctl: Control, barrier: threading.Barrier) -> None:
        try:
            held, need_requeue = self.load(ctl)
            self.drain(ctl, barrier, held, need_requeue)
        except BaseException as e:
            barrier.abort()
            ctl.fail(e)
            raise

    def load(self, ctl: Control) -> tuple[list[int], bool]:
        rng = self.rng
        need_requeue = self.receives  # a harness requeues at boot
        held: list[int] = []  # the batch of the turn in progress
        while not ctl.stop.is_set():
            try:
                if need_requeue:
                    self.requeue(ctl)
                    need_requeue = False
                elif held:
                    r = rng.random()
                    if r < 0.08:  # the harness dies mid-turn: its next boot requeues
                        held, need_requeue = [], True
                    elif r < 0.25:  # a turn sends before it ends
                        self.send(ctl)
                    else:
                        self.ack(ctl, held, bare=rng.random() < 0.2)
                        held = []
                elif self.receives and rng.random() < 0.5:
                    held = self.recv(ctl, rng.randint(1, 8), 1 if rng.random() < 0.2 else 0)
                else:
                    self.send(ctl)
            except (Interrupted, Refused):
                # The daemon restarted under us (or refused): what we popped is unknown, so
                # requeue on the new daemon before anything else, as a harness does.
                held, need_requeue = [], self.receives
        return held, need_requeue

    def drain(
        self, ctl: Control, barrier: threading.Barrier, held: list[int], need_requeue: bool
    ) -> None:
        """No kills any more: finish the turn, wait for every sender to stop, empty the inbox."""
        if held:
            self.ack(ctl, held, bare=False)
        barrier.wait()
        if not self.receives:
            return
        if need_requeue:
            self.requeue(ctl)
        while ids := self.recv(ctl, 32, 0):
            self.ack(ctl, ids, bare=False)


# --- classification ----------------------------------------------------------------------------
@attrs.frozen
class DbRow:
    id: int
    recipient: str
    sender: str
    body: str
    acked_at: float | None
    dead_at: float | None


def read_rows(db: Path) -> dict[int, DbRow]:
    conn = sqlite3.connect(db)
    try:
        return {
            r[0]: DbRow(*r)
            for r in conn.execute(
                "SELECT id, recipient, sender, body, acked_at, dead_at FROM messages"
            )
        }
    finally:
        conn.close()


@attrs.define
class Verdict:
    counts: dict[str, int] = attrs.Factory(lambda: dict.fromkeys(PROBLEMS, 0))
    examples: dict[str, list[str]] = attrs.Factory(dict)

    def flag(self, kind: str, what: str) -> None:
        self.counts[kind] += 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < 5:
            shown.append(what)

    @property
    def clean(self) -> bool:
        return not any(self.counts.values())


def _parse(body: str) -> tuple[str, int] | None:
    try:
        label, seq, _ = body.split(":", 2)
        return label, int(seq)
    except ValueError:
        return None


def classify(clients: list[Client], rows: dict[int, DbRow]) -> Verdict:
    """Every message of every agent's inbox, against the clients' histories and the table."""
    v = Verdict()
    sent: dict[int, tuple[Client, str, int]] = {}  # id -> (sender, to, seq)
    for c in clients:
        for e in c.events:
            if e[0] == "sent":
                sent[e[1]] = (c, e[2], e[3])
            elif e[0] == "error":
                v.flag("error_answer", f"{c.label}: {e[1]} answered {e[2]}: {e[3]}")
            elif e[0] == "mismatch":
                v.flag("ack_mismatch", f"{c.label}: ack of {list(e[1])} answered {e[2]}")

    received: dict[str, set[int]] = {}
    for c in clients:
        if not c.receives:
            continue
        seen: set[int] = set()
        acked: set[int] = set()
        last: dict[str, int] = {}
        for e in c.events:
            if e[0] == "acked":
                acked.update(e[1])
                continue
            if e[0] != "got":
                continue
            _, mid, sender, body, redelivered = e
            if mid in acked:
                v.flag("after_ack", f"{c.principal}: {mid} ({body[:20]}) delivered after its ack")
            if mid in seen:
                if not redelivered:
                    v.flag(
                        "unflagged_repeat", f"{c.principal}: repeat of {mid} without redelivered"
                    )
                continue
            seen.add(mid)
            row = rows.get(mid)
            if row is None or (row.recipient, row.sender, row.body) != (c.principal, sender, body):
                v.flag("corrupt", f"{c.principal}: {mid} from {sender} does not match its row")
            if mid in sent:
                src, to, seq = sent[mid]
                if (src.principal, to, _parse(body)) != (sender, c.principal, (src.label, seq)):
                    v.flag("corrupt", f"{c.principal}: {mid} is not what {src.label} sent")
            parsed = _parse(body)
            if parsed is None:
                v.flag("corrupt", f"{c.principal}: {mid} has a foreign body {body[:40]!r}")
                continue
            label, seq = parsed
            if seq <= last.get(label, -1):
                v.flag(
                    "out_of_order",
                    f"{c.principal}: first delivery of {label}:{seq} "
                    f"(id {mid}) after {label}:{last[label]}",
                )
            last[label] = max(seq, last.get(label, -1))
        received[c.principal] = seen

    for mid, (src, to, seq) in sorted(sent.items()):
        if mid not in received.get(to, set()):
            v.flag("lost", f"{src.label}:{seq} (id {mid}) to {to} answered ok, never delivered")
    for mid, row in sorted(rows.items()):
        if row.recipient not in received:
            continue  # the manager's helper events, the operator's inbox: not this load's
        if mid not in sent and mid not in received[row.recipient]:
            v.flag(
                "lost",
                f"{row.body[:20]} (id {mid}) to {row.recipient} committed (answer "
                "lost), never delivered",
            )
        if row.acked_at is None or row.dead_at is not None:
            v.flag(
                "unacked_at_end",
                f"{mid} to {row.recipient}: acked_at={row.acked_at} dead_at={row.dead_at}",
            )
    return v


# --- a run -----------------------------------------------------------------------------------
@attrs.define
class Summary:
    seed: int
    kills: int
    agents: int
    messages: int  # sends answered ok
    unknown_sends: int  # sends cut short by a kill
    committed_unknown: int  # ... of which the row exists
    deliveries: int
    redeliveries: int
    acked: int  # messages in acks answered ok
    harness_deaths: int  # requeues at a client's (re)boot
    interrupted: int  # requests cut short
    elapsed: float
    verdict: Verdict

    @property
    def clean(self) -> bool:
        return self.verdict.clean

    def render(self) -> str:
        per = self.elapsed / self.kills * 200 if self.kills else 0.0
        lines = [
            f"seed {self.seed}: {self.kills} kills in {self.elapsed:.1f} s "
            f"({per:.1f} s per 200 kills), {self.agents} agents + operator",
            f"messages {self.messages} sent ok, {self.unknown_sends} sends cut short "
            f"({self.committed_unknown} of them committed); {self.deliveries} deliveries "
            f"({self.redeliveries} redelivered), {self.acked} acked; "
            f"{self.interrupted} requests cut short, {self.harness_deaths} requeues",
            "classification: " + ", ".join(f"{k} {n}" for k, n in self.verdict.counts.items()),
        ]
        for kind, shown in self.verdict.examples.items():
            lines += [f"  {kind}: {s}" for s in shown]
        lines.append("CLEAN" if self.clean else "PROBLEMS FOUND")
        return "\n".join(lines)


def run_chaos(
    base: Path,
    *,
    kills: int,
    seed: int,
    agents: int = 4,
    max_ops: int = 40,
    log: Callable[[str], None] | None = None,
) -> Summary:
    """One run on `base` (a short directory: unix socket paths are limited to 107 bytes)."""
    rng = random.Random(seed)
    names = [f"a{i}" for i in range(agents)]
    d = DaemonProcess(base, "max_deliveries = 1000000\n")
    started = time.monotonic()
    verdict = Verdict()
    try:
        d.start()
        for name in names:
            call_sync(d.host, {"cmd": "spawn", "name": name, "command": _sleeper()}, CALL_TIMEOUT)
        clients = [
            Client(
                name,
                name,
                d.agent_socket(name),
                [n for n in names if n != name],
                True,
                random.Random(rng.random()),
            )
            for name in names
        ] + [Client("op", "operator", d.host, names, False, random.Random(rng.random()))]
        ctl = Control()
        barrier = threading.Barrier(len(clients), timeout=WAIT)
        threads = [
            threading.Thread(
                target=c.run, args=(ctl, barrier), name=f"chaos-{c.label}", daemon=True
            )
            for c in clients
        ]
        for t in threads:
            t.start()
        done = 0
        try:
            for done in range(1, kills + 1):
                ctl.wait_ops(ctl.ops + rng.randint(1, max_ops))  # a random moment under load
                d.kill9()
                d.start()
                if not integrity_ok(d.database):
                    verdict.flag("integrity", f"integrity_check failed after kill {done}")
                for name in names:  # bound before the host socket; checked all the same
                    wait_until(
                        lambda n=name: answers(d.agent_socket(n), {"cmd": "whoami"}),
                        f"{name}'s socket",
                    )
                ctl.bump()
                if log and done % 100 == 0:
                    log(f"{done} kills, {time.monotonic() - started:.1f} s, {ctl.ops} requests")
            ctl.wait_ops(ctl.ops + 20)  # the last daemon serves the load too
        finally:
            ctl.stop.set()
            for t in threads:
                t.join(WAIT * 2)
        if ctl.failed is not None:
            raise RuntimeError(f"a client thread failed (seed {seed})") from ctl.failed
        if any(t.is_alive() for t in threads):
            raise AssertionError(f"a client thread hangs (seed {seed})")

        live = agent_pids(d.run_dir)
        if len(live) != agents:
            verdict.flag("agents", f"{len(live)} agent processes for {agents} agents: {live}")
        if d.stop() != 0:
            verdict.flag("agents", f"the last daemon exited {d.proc and d.proc.returncode}")
        left = agent_pids(d.run_dir)
        if left:
            verdict.flag("agents", f"agent processes outlived the daemon: {left}")
        if not integrity_ok(d.database):
            verdict.flag("integrity", "integrity_check failed at the end")
        rows = read_rows(d.database)
    finally:
        d.ensure_dead()
        kill_agents(d.run_dir)

    found = classify(clients, rows)
    for kind in PROBLEMS:
        for what in found.examples.get(kind, []):
            verdict.examples.setdefault(kind, []).append(what)
        verdict.counts[kind] += found.counts[kind]
    events = [e for c in clients for e in c.events]
    unknown = {(c.label, e[2]) for c in clients for e in c.events if e[0] == "sent?"}
    return Summary(
        seed=seed,
        kills=done,
        agents=agents,
        messages=sum(1 for e in events if e[0] == "sent"),
        unknown_sends=len(unknown),
        committed_unknown=sum(1 for r in rows.values() if _parse(r.body) in unknown),
        deliveries=sum(1 for e in events if e[0] == "got"),
        redeliveries=sum(1 for e in events if e[0] == "got" and e[4]),
        acked=sum(len(e[1]) for e in events if e[0] == "acked"),
        harness_deaths=sum(1 for e in events if e[0] == "requeued"),
        interrupted=ctl.interrupted,
        elapsed=time.monotonic() - started,
        verdict=verdict,
    )
