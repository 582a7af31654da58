#!/usr/bin/env python3
"""Scale benchmark: idle cost, memory and start-up time of a daemon with 200 agents, each figure
beside a reference measured in the same run (targets: shared spec quality.md, "Speed and
scale"; results: docs/performance.md).

    .venv/bin/python bench/scale.py [--agents 200] [--idle-seconds 30] [--restarts 5]

The daemon runs as a subprocess (`python -m hive_core serve --log-level warning`) on short temp
dirs, with `NOTIFY_SOCKET` naming an abstract datagram socket this process binds, so every
`READY=1` (and `STATUS=`, `STOPPING=1`) it sends (hive_core/sdnotify.py) arrives here. Agents are
spawned through the host socket verb `spawn` with a sleeping child (`sleep 3600` by default: the
agents' own start-up then competes as little as possible with the daemon's for the CPUs;
`--sleeper python` runs `python -c "time.sleep(3600)"` like bench/broker.py). Figures are read
from /proc: CPU is utime+stime of /proc/PID/stat (every thread of the daemon, exited ones
included; not its children; in clock ticks of 10 ms, so one tick in 30 s is 0.033 %), and, finer,
the run time in ns of /proc/PID/task/*/schedstat; wake-ups are voluntary+nonvoluntary context
switches summed over /proc/PID/task/*/status (threads sampled every 0.5 s, so one that ends keeps
what it had when last seen); memory is VmRSS and VmHWM of /proc/PID/status.

Phases:
0. references without a daemon: the RSS of a sleeping bare `python -c "import trio, sqlite3,
   attrs, cattrs"` and of one that imported `hive_core.daemon`; the wall time of `python -c
   pass`, of that bare import and of `python -c "import hive_core.daemon"` (median of
   `--restarts` runs each);
1. start on an empty state dir (first start: database created), then `--restarts` restarts with 0
   agents in the database (SIGTERM, wait, start): start → `READY=1` each, the reference of
   phase 5; the RSS of the 0-agent daemon after the last one;
2. `--agents` spawns (timed); the RSS with the agents and no connection;
3. idle, reference: `--idle-seconds` with no connection at all: daemon CPU and wake-ups;
4. idle, the target row: this process holds one connection per agent socket
   (`<run>/agents/<name>/mcp.sock`), each with a pending `recv` with wait_seconds=180 (issued
   again if it returns empty); nothing is sent; the same window, the same figures; then the RSS
   with the agents and the long-polls open (the memory row);
5. `--restarts` restarts with the agents in the database: SIGTERM (the daemon stops its agents:
   `stop_agents_on_exit`), wait, start with `NOTIFY_SOCKET`; the time from just before `Popen` to
   the receipt of the datagram holding `READY=1`. Before `READY=1` the daemon opens every known
   agent's socket, checks its config repos (git) and starts the agents whose `want_running` is set
   (daemon.py `_start`, agents.py `reopen`): all of them here. Each restart checks that the old
   agents are gone and that the new daemon runs every agent again.
At the end the daemon is stopped and no agent process of this run may be left (/proc scan).

Timers of an idle daemon (what the wake-ups should add up to; quality.md: "no timer faster than
the reminder tick"): the reminder scheduler's safety tick, 5 s (reminders.py SAFETY_TICK,
`Reminders.scheduler`); the crash watcher's scan, `crash_scan` = 10 s (lifecycle.py
`Lifecycle.watch`); the question watchdog's safety tick, 60 s (questions.py SAFETY_TICK); the
maintenance sweep (lease expiry, hourly vacuum, a `STATUS=` datagram), min(60 s,
lease_timeout / 4) = 60 s (daemon.py `_maintenance`); systemd's watchdog only with
`WATCHDOG_USEC` (not here); trio's idle worker threads end 10 s after their last job. The store
thread blocks in `queue.get()` with no timeout; a parked long-poll is a trio deadline 180 s out.
So at most 0.33 timer wake-ups/s of the main thread (one per 3 s on average), none faster than
5 s; the crash watcher starts with the reminder scheduler and fires a few ms after every second
tick (a wake-up of its own), and a maintenance sweep in a window adds a few switches (its store
job may go to the store thread). Each blocking `epoll_wait` that returns counts one voluntary
switch; nonvoluntary ones are preemptions by other load on the machine.

As in bench/broker.py, the daemon is whatever `python -m hive_core` imports from outside the repo
(the editable install, i.e. the working tree); with others editing the tree, benchmark a commit by
exporting it and pointing PYTHONPATH at the export:
    git archive HEAD hive_core hive_wire | tar -x -C /tmp/hsrc
    PYTHONPATH=/tmp/hsrc .venv/bin/python bench/scale.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio  # noqa: E402
from common import header, mark  # noqa: E402  (bench/common.py)

from hive_wire.blocking import call_sync, check_answer  # noqa: E402
from hive_wire.client import Connection  # noqa: E402
from tests.procs import agent_pids  # noqa: E402

SLEEPERS = {
    "sleep": [shutil.which("sleep") or "/bin/sleep", "3600"],
    "python": [sys.executable, "-c", "import time; time.sleep(3600)"],
}
RECV = {"cmd": "recv", "wait_seconds": 180}
CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1024 * 1024
BARE_IMPORTS = "import trio, sqlite3, attrs, cattrs"
# Timers of an idle daemon and their periods (s), as the module docstring lists them.
TIMERS = {
    "reminder scheduler": 5.0,
    "crash watcher": 10.0,
    "question watchdog": 60.0,
    "maintenance sweep": 60.0,
}


# --- /proc ----------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (its threads, not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM in MB."""
    st = status(pid)
    return {k: int(st[k].split()[0]) * 1024 / MB for k in ("VmRSS", "VmHWM")}


def switches(pid: int) -> dict[int, tuple[str, int, int, int]]:
    """Per thread: its name, voluntary and nonvoluntary context switches so far, and the
    nanoseconds it ran (/proc/TID/schedstat, finer than the clock ticks of /proc/PID/stat)."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            st = status(int(tid))  # /proc/TID/status of a thread is its own
            ran = int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except OSError:
            continue  # ended meanwhile
        out[int(tid)] = (
            st["Name"],
            int(st["voluntary_ctxt_switches"]),
            int(st["nonvoluntary_ctxt_switches"]),
            ran,
        )
    return out


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# --- sd_notify ------------------------------------------------------------------------------------
class Notify:
    """An abstract AF_UNIX datagram socket standing in for systemd's notify socket."""

    def __init__(self) -> None:
        name = f"hive-scale-{os.getpid()}-{secrets.token_hex(4)}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind("\0" + name)
        self.env_value = "@" + name  # sdnotify.py turns "@" into the abstract namespace

    def drain(self) -> list[str]:
        got = []
        self.sock.setblocking(False)
        try:
            while True:
                got.append(self.sock.recv(4096).decode("utf-8", "replace"))
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)
        return got

    def wait_for(
        self, field: str, proc: subprocess.Popen[bytes], timeout: float, log: Path
    ) -> tuple[float, str]:
        """perf_counter() at the receipt of the datagram holding `field`, and that datagram."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.05)
        try:
            while True:
                try:
                    data = self.sock.recv(4096)
                except TimeoutError:
                    if proc.poll() is not None:
                        raise RuntimeError(
                            f"daemon exited {proc.returncode}: {log.read_text()[-2000:]}"
                        ) from None
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"no {field} within {timeout} s") from None
                    continue
                t = time.perf_counter()
                text = data.decode("utf-8", "replace")
                if field in text.split("\n"):
                    return t, text
        finally:
            self.sock.settimeout(None)

    def close(self) -> None:
        self.sock.close()


# --- the daemon -----------------------------------------------------------------------------------
class Daemon:
    def __init__(self, base: Path, notify: Notify) -> None:
        self.base = base
        self.state = base / "s"
        self.run = base / "r"
        self.host = str(self.run / "host.sock")
        self.log = base / "daemon.log"
        self.notify = notify
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("WATCHDOG_USEC", "WATCHDOG_PID", "INVOCATION_ID", "LISTEN_FDS")
        }
        self.env["NOTIFY_SOCKET"] = notify.env_value

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 120.0) -> tuple[float, str]:
        """Start it; seconds from just before Popen to `READY=1`, and the READY datagram."""
        assert self.proc is None or self.proc.poll() is not None
        self.notify.drain()
        with open(self.log, "ab") as log:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hive_core",
                    "serve",
                    "--state-dir",
                    str(self.state),
                    "--run-dir",
                    str(self.run),
                    "--log-level",
                    "warning",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.base,  # so `-m hive_core` is the installed (or PYTHONPATH) copy
                env=self.env,
            )
        t1, text = self.notify.wait_for("READY=1", self.proc, timeout, self.log)
        call_sync(self.host, {"cmd": "list"}, timeout=30)  # and it answers
        return t1 - t0, text

    def socket(self, name: str) -> str:
        return str(self.run / "agents" / name / "mcp.sock")

    def stop(self) -> float:
        """SIGTERM and wait; the seconds it took (0 if it was not running)."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        t0 = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            print(f"daemon {self.proc.pid} still running 120 s after SIGTERM: SIGKILL", flush=True)
            self.proc.kill()
            self.proc.wait()
        return time.perf_counter() - t0


def wait_agents(run: Path, count: int, timeout: float = 30.0) -> int:
    """Wait until `count` agent processes of this run are alive; how many there are."""
    deadline = time.monotonic() + timeout
    while True:
        n = len(agent_pids(run))
        if n == count or time.monotonic() > deadline:
            return n
        time.sleep(0.1)


# --- references without a daemon ------------------------------------------------------------------
def wall(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True)
    t = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed: {done.stderr.decode()[-2000:]}")
    return t


def sleeping_rss(code: str, cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """RSS of a python that ran `code` and now sleeps."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"{code}; import sys, time; print('up', flush=True); time.sleep(600)",
        ],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"up":
            raise RuntimeError(f"{code!r} did not start")
        time.sleep(0.2)
        return memory(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def references(n: int, cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    env = {k: v for k, v in env.items() if k != "NOTIFY_SOCKET"}
    runs: dict[str, list[float]] = defaultdict(list)
    cases = {
        "pass": "pass",
        "bare_imports": BARE_IMPORTS,
        "hive_core_daemon": "import hive_core.daemon",
    }
    for _ in range(n):  # interleaved, so drift on the machine hits each alike
        for key, code in cases.items():
            runs[key].append(wall([sys.executable, "-c", code], cwd, env))
    code = "import os, hive_core.daemon as d; print(os.path.dirname(d.__file__))"
    where = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    return {
        "daemon_code": where,
        "import_wall_s": {k: statistics.median(v) for k, v in runs.items()},
        "import_wall_runs_s": dict(runs),
        "rss_bare_imports": sleeping_rss(BARE_IMPORTS, cwd, env),
        "rss_hive_core_daemon_imported": sleeping_rss("import hive_core.daemon", cwd, env),
    }


# --- agents, long-polls, idle windows -------------------------------------------------------------
async def spawn(daemon: Daemon, names: list[str], command: list[str]) -> None:
    async with await Connection.open(daemon.host) as host:
        for name in names:
            await host.call({"cmd": "spawn", "name": name, "command": command})


class Polls:
    """One connection per agent socket, each with a pending long-poll `recv`."""

    def __init__(self, daemon: Daemon, names: list[str]) -> None:
        self.daemon = daemon
        self.names = names
        self.reissued = 0  # long-polls that returned empty (only past wait_seconds)
        self.stray: list[str] = []  # agents that received a message (nothing is sent)

    async def hold(self, name: str, task_status: trio.TaskStatus[None]) -> None:
        async with await Connection.open(self.daemon.socket(name)) as conn:
            await conn.send(RECV)
            task_status.started()
            while True:
                got = check_answer(await conn.read())
                if got["messages"]:
                    self.stray.append(name)
                else:
                    self.reissued += 1
                await conn.send(RECV)

    async def open(self, nursery: trio.Nursery) -> None:
        for name in self.names:
            await nursery.start(self.hold, name)


async def idle_window(pid: int, seconds: float) -> dict[str, Any]:
    """The daemon's CPU and context switches over `seconds` in which this process does nothing
    to it (it only reads /proc every 0.5 s)."""
    first = switches(pid)
    last = dict(first)
    cpu0 = cpu_seconds(pid)
    t0 = time.perf_counter()
    end = t0 + seconds
    while (left := end - time.perf_counter()) > 0:
        await trio.sleep(min(0.5, left))
        for tid, seen in switches(pid).items():
            first.setdefault(tid, (seen[0], 0, 0, 0))  # a thread born during the window
            last[tid] = seen
    cpu1 = cpu_seconds(pid)
    elapsed = time.perf_counter() - t0
    per_name: dict[str, int] = defaultdict(int)
    per_tid = {}
    ran_ns = vol = 0
    for tid, (name, v, nv, ran) in last.items():
        _, v0, nv0, ran0 = first[tid]
        per_name[name] += v - v0 + nv - nv0
        vol += v - v0
        ran_ns += ran - ran0
        per_tid[tid] = {
            "name": name,
            "voluntary": v - v0,
            "nonvoluntary": nv - nv0,
            "ran_ms": (ran - ran0) / 1e6,
        }
    wakeups = sum(per_name.values())
    return {
        "seconds": elapsed,
        "cpu_s": cpu1 - cpu0,
        "cpu_pct": (cpu1 - cpu0) / elapsed * 100,
        "ran_s": ran_ns / 1e9,  # schedstat: threads that ended in the window are missing
        "ran_pct": ran_ns / 1e9 / elapsed * 100,
        "wakeups": wakeups,
        "voluntary": vol,
        "wakeups_per_s": wakeups / elapsed,
        "mean_interval_s": elapsed / wakeups if wakeups else None,
        "threads_seen": len(last),
        "threads_at_end": len(switches(pid)),
        "per_thread_name": dict(per_name),
        "per_thread": per_tid,
    }


async def idle_phases(args: argparse.Namespace, daemon: Daemon, names: list[str]) -> dict[str, Any]:
    res: dict[str, Any] = {}
    await trio.sleep(args.settle)
    res["reference"] = await idle_window(daemon.pid, args.idle_seconds)
    res["reference"]["fds"] = open_fds(daemon.pid)
    polls = Polls(daemon, names)
    async with trio.open_nursery() as nursery:
        t = time.perf_counter()
        await polls.open(nursery)
        res["polls_open_s"] = time.perf_counter() - t
        await trio.sleep(args.settle)  # every recv read and parked by the daemon
        fds = open_fds(daemon.pid)
        res["polls"] = await idle_window(daemon.pid, args.idle_seconds)
        res["polls"]["fds"] = fds
        res["memory_polls"] = memory(daemon.pid)
        res["reissued"] = polls.reissued
        res["stray"] = list(polls.stray)
        nursery.cancel_scope.cancel()
    if polls.stray:
        raise AssertionError(f"idle agents received messages: {polls.stray[:5]}")
    return res


# --- restarts -------------------------------------------------------------------------------------
def restarts(daemon: Daemon, n: int, agents: int, settle: float) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        stop_s = daemon.stop()
        left = agent_pids(daemon.run)
        if left:
            raise AssertionError(f"agents left running after the daemon stopped: {left[:5]}")
        ready_s, text = daemon.start()
        running = wait_agents(daemon.run, agents)
        if running != agents:
            raise AssertionError(f"{running} agents running after restart, expected {agents}")
        status_line = next((f[7:] for f in text.split("\n") if f.startswith("STATUS=")), "")
        out.append({"stop_s": stop_s, "ready_s": ready_s, "status": status_line})
        time.sleep(settle)  # the start-up sweep (maintenance, vacuum) runs after READY=1
    return out


# --- the run --------------------------------------------------------------------------------------
def fmt_mem(m: dict[str, float]) -> str:
    return f"VmRSS {m['VmRSS']:.1f} MB (VmHWM {m['VmHWM']:.1f} MB)"


def fmt_threads(w: dict[str, Any]) -> str:
    return ", ".join(
        f"{name} {n}" for name, n in sorted(w["per_thread_name"].items(), key=lambda kv: -kv[1])
    )


def fmt_idle(w: dict[str, Any]) -> str:
    interval = (
        f"mean interval {w['mean_interval_s']:.2f} s" if w["mean_interval_s"] else "no wake-up"
    )
    return (
        f"CPU {w['cpu_pct']:.3f} % of a core ({w['cpu_s'] * 1000:.0f} ms of clock ticks "
        f"in {w['seconds']:.1f} s; schedstat {w['ran_s'] * 1000:.1f} ms = "
        f"{w['ran_pct']:.4f} %), {w['wakeups']} wake-ups ({w['voluntary']} voluntary) = "
        f"{w['wakeups_per_s']:.2f}/s "
        f"({interval}; {w['threads_seen']} threads: {fmt_threads(w)}; {w['fds']} fds)"
    )


def fmt_times(values: list[float]) -> str:
    return " ".join(f"{v:.3f}" for v in values) + f" s; median {statistics.median(values):.3f} s"


def run(args: argparse.Namespace, dir_: Path) -> dict[str, Any]:
    res: dict[str, Any] = {}
    notify = Notify()
    daemon = Daemon(dir_, notify)
    names = [f"a{i:03d}" for i in range(args.agents)]
    try:
        # 0. references without a daemon
        ref = references(max(args.restarts, 3), dir_, daemon.env)
        res["references"] = ref
        w = ref["import_wall_s"]
        print(
            f"daemon code: {ref['daemon_code']} (PYTHONPATH={os.environ.get('PYTHONPATH', '')!r})",
            flush=True,
        )
        print(
            f"python startup, median of {max(args.restarts, 3)}: `-c pass` {w['pass']:.3f} s, "
            f"`{BARE_IMPORTS}` {w['bare_imports']:.3f} s, `import hive_core.daemon` "
            f"{w['hive_core_daemon']:.3f} s",
            flush=True,
        )
        print(
            f"python sleeping after `{BARE_IMPORTS}`: {fmt_mem(ref['rss_bare_imports'])}; "
            f"after `import hive_core.daemon`: "
            f"{fmt_mem(ref['rss_hive_core_daemon_imported'])}",
            flush=True,
        )

        # 1. empty state dir, then restarts with 0 agents
        first, _ = daemon.start()
        res["first_start_ready_s"] = first
        time.sleep(args.settle)
        zero = restarts(daemon, args.restarts, 0, args.settle)
        res["restarts_0"] = zero
        res["memory_0"] = memory(daemon.pid)
        print(
            f"daemon pid {daemon.pid}; first start (empty state dir) to READY=1: {first:.3f} s",
            flush=True,
        )
        print(
            f"start to READY=1, 0 agents: {fmt_times([r['ready_s'] for r in zero])} "
            f"(stop {statistics.median([r['stop_s'] for r in zero]):.3f} s)",
            flush=True,
        )
        print(f"daemon, 0 agents, after a restart: {fmt_mem(res['memory_0'])}", flush=True)

        # 2. spawns
        t = time.perf_counter()
        trio.run(spawn, daemon, names, SLEEPERS[args.sleeper])
        res["spawn_s"] = spawn_s = time.perf_counter() - t
        running = wait_agents(daemon.run, args.agents)
        if running != args.agents:
            raise AssertionError(f"{running} agents running, expected {args.agents}")
        time.sleep(args.settle)
        res["memory_agents"] = memory(daemon.pid)
        print(
            f"spawned {args.agents} agents ({args.sleeper}) in {spawn_s:.1f} s = "
            f"{spawn_s / max(args.agents, 1) * 1000:.0f} ms each; daemon: "
            f"{fmt_mem(res['memory_agents'])}",
            flush=True,
        )

        # 3, 4. idle windows, then the memory row
        idle = trio.run(idle_phases, args, daemon, names)
        res["idle"] = idle
        ref_w, w = idle["reference"], idle["polls"]
        print(f"idle, {args.agents} agents, 0 connections: {fmt_idle(ref_w)}", flush=True)
        print(
            f"idle, {args.agents} agents, {args.agents} long-polls open (opened in "
            f"{idle['polls_open_s']:.2f} s): {fmt_idle(w)}",
            flush=True,
        )
        timer_rate = sum(1 / p for p in TIMERS.values())
        print(
            f"    target <= 1 % of a core: {mark(w['cpu_pct'] <= 1)}; long-polls add "
            f"{w['cpu_pct'] - ref_w['cpu_pct']:+.3f} % and "
            f"{w['wakeups_per_s'] - ref_w['wakeups_per_s']:+.2f} wake-ups/s; the timers ("
            + ", ".join(f"{k} {v:g} s" for k, v in TIMERS.items())
            + f") make at most {timer_rate:.2f}/s (fewer when they coincide); long-polls "
            f"answered empty: "
            f"{idle['reissued']}",
            flush=True,
        )
        mem = idle["memory_polls"]
        per_agent = (mem["VmRSS"] - res["memory_0"]["VmRSS"]) / max(args.agents, 1)
        res["memory_per_agent_mb"] = per_agent
        print(
            f"memory, {args.agents} agents + {args.agents} long-polls: {fmt_mem(mem)} "
            f"(target <= 100 MB: {mark(mem['VmRSS'] <= 100)}); 0 agents "
            f"{res['memory_0']['VmRSS']:.1f} MB, so {per_agent * 1024:.0f} kB per agent; bare "
            f"python with {BARE_IMPORTS.removeprefix('import ')}: "
            f"{ref['rss_bare_imports']['VmRSS']:.1f} MB",
            flush=True,
        )

        # 5. restarts with the agents in the database
        full = restarts(daemon, args.restarts, args.agents, args.settle)
        res["restarts_agents"] = full
        res["memory_after_restart"] = memory(daemon.pid)
        ready = [r["ready_s"] for r in full]
        zero_med = statistics.median([r["ready_s"] for r in zero])
        med = statistics.median(ready)
        print(
            f"start to READY=1, {args.agents} agents: {fmt_times(ready)} (target <= 1 s: "
            f"{mark(med <= 1)}); 0 agents: median {zero_med:.3f} s; `import "
            f"hive_core.daemon` {ref['import_wall_s']['hive_core_daemon']:.3f} s; so "
            f"{(med - zero_med) / max(args.agents, 1) * 1000:.1f} ms per agent",
            flush=True,
        )
        print(
            f"    stop (SIGTERM, {args.agents} agents stopped) median "
            f"{statistics.median([r['stop_s'] for r in full]):.3f} s; READY STATUS: "
            f"{full[-1]['status']!r}; daemon after the restart: "
            f"{fmt_mem(res['memory_after_restart'])}",
            flush=True,
        )
        return res
    finally:
        daemon.stop()
        notify.close()
        left = agent_pids(daemon.run)
        for pid in left:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        if left:
            print(f"LEFT OVER after the daemon stopped: agent pids {left} (killed)", flush=True)
        res["left_over_agents"] = left


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Idle cost, memory and start-to-READY of a daemon with many agents, each "
        "beside a same-run reference."
    )
    ap.add_argument("--agents", type=int, default=200, help="agents spawned (and long-polling)")
    ap.add_argument(
        "--idle-seconds",
        type=float,
        default=30.0,
        help="length of each idle window (with and without long-polls)",
    )
    ap.add_argument(
        "--restarts",
        type=int,
        default=5,
        help="timed restarts with the agents (and as many with 0 agents)",
    )
    ap.add_argument(
        "--sleeper",
        choices=sorted(SLEEPERS),
        default="sleep",
        help="the agents' command: coreutils sleep (default) or a sleeping python",
    )
    ap.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="pause after each start, the spawns and opening the long-polls",
    )
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (database, log)")
    args = ap.parse_args()
    if args.agents < 1 or args.idle_seconds <= 0 or args.restarts < 1 or args.settle < 0:
        ap.error("--agents, --idle-seconds and --restarts must be positive")

    dir_ = Path(tempfile.mkdtemp(prefix="hs", dir="/tmp"))  # short: socket paths <= 107 bytes
    command, rev = header("scale.py")
    print(
        f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, trio "
        f"{trio.__version__}, {os.cpu_count()} cpus, temp dir {dir_}",
        flush=True,
    )
    try:
        res = run(args, dir_)
        res["command"] = command
        res["commit"] = rev
        res["date"] = str(dt.date.today())
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
        return 0
    finally:
        if args.keep:
            print(f"kept {dir_}")
        else:
            shutil.rmtree(dir_, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
