"""`hive-core agent run`: the turn loop of one agent (agent.md), on trio.

Rules kept here:
- at start, claude left running by a killed harness is killed (its group, found by a pid file
  and a token in its environment), then `requeue_inflight`: nothing a dead harness popped is lost;
- no `recv` while the agent is paused (the daemon's `paused` marker in the state dir); messages
  popped just before a pause are requeued at once; the marker is looked at every `pause_poll`
  seconds while paused (a stat; the daemon sends no pause notice on the agent socket);
- a batch of lifecycle kicks only (`system` "started"/"restarted"/"rebuilt") starts no turn: it
  is acked and told in the next turn's wake prompt;
- a turn is acked (`ack_turn` with the ids it was woken by and those its `recv` tool returned)
  only when it ended OK; a failed turn acks nothing (the lease or the next start brings its
  messages back, flagged);
- prompt too long: `/compact` once, then the turn once more; rate limited: wait
  `rate_limit_wait`, try again; a turn over `turn_timeout` is killed with its process group;
- SIGTERM: no new turn; the running one gets `stop_grace` seconds, then is killed;
- the event bus, the turn-stats file and the activity reports are best effort: none of them
  ever blocks or fails a turn; activity goes in batches of at most 64 from a bounded buffer;
  `turn_start` and `turn_end` carry the ids of the messages that woke the turn (the daemon
  charges the turn to their thread);
- the hive's tools: by default one MCP endpoint for the harness's life (`mcp.HttpEndpoint`,
  loopback HTTP behind a bearer token), named in the mcp-config file (0600: it holds the
  token); calls still running when a claude run ends are cancelled; `--mcp stdio`: claude
  starts `hive-core mcp` itself every turn.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any

import trio

from hive_wire.client import Connection
from hive_wire.errors import WireError

from . import bus as busmod
from . import claude, stream
from .mcp import HttpEndpoint
from .options import Options, options
from .prompt import REDELIVERED, lifecycle_only, wake_prompt  # noqa: F401 (re-exported)
from .tools import AGENT_TOOLS, MANAGER_TOOLS  # noqa: F401 (re-exported)
from .turn_stats import FILE as STATS_FILE
from .turn_stats import TurnRow, TurnStats

log = logging.getLogger("hive_core.agent.loop")

PAUSED_MARKER = "paused"  # written by the daemon (lifecycle.set_paused)
SESSION_MARKER = "hive-claude-session"  # a session exists: the next turn uses --continue
NEW_SESSION_MARKER = "new-session"  # anyone may create it: the next turn starts fresh
PID_FILE = "hive-claude.pid"
MCP_CONFIG = "hive-mcp.json"
UNSENT_FILE = "unsent-turn-ends.json"  # turn_ends not sent when the harness stopped


class Harness:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.state = opts.state_dir
        self.bus = busmod.EventBus(self.state / "hyperhive-events.sqlite")
        self.stats = TurnStats(self.state / STATS_FILE)
        self.reporter = busmod.ActivityReporter(opts.socket, keep=self.state / UNSENT_FILE)
        self.token = secrets.token_hex(8)
        self.notes: list[str] = []
        self.stopping = False
        self.turns = 0  # claude runs finished
        self.completed = 0  # turns finished (acked or not)
        self.pause_checks = 0
        self.kicks = 0  # lifecycle-only messages acked without a turn
        self.progress = trio.lowlevel.ParkingLot()  # unparked on every turn and pause check
        self.model: str | None = opts.model
        self._conn: Connection | None = None
        self._idle_scope: trio.CancelScope | None = None
        self._turn_scope: trio.CancelScope | None = None
        self._state = ""
        self.nursery: trio.Nursery | None = None
        self.endpoint: HttpEndpoint | None = None
        if opts.mcp == "http":
            fixed = (opts.env if opts.env is not None else os.environ).get("HIVE_MCP_CALL_TIMEOUT")
            self.endpoint = HttpEndpoint(opts.socket, float(fixed) if fixed else None)

    # --- the daemon --------------------------------------------------------------------------
    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request; a lost connection is opened again (the daemon may restart)."""
        delay = 0.2
        while True:
            try:
                if self._conn is None:
                    self._conn = await Connection.open(self.opts.socket)
                return await self._conn.call(request)
            except (OSError, EOFError, trio.BrokenResourceError) as e:
                await self._drop_conn()
                log.warning("agent socket %s: %s; retrying in %.1fs", self.opts.socket, e, delay)
                await trio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except WireError:
                raise
            except BaseException:  # cancelled mid-request: the answer would come out of turn
                await self._drop_conn()
                raise

    async def _drop_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with trio.CancelScope(shield=True):
                await conn.aclose()

    # --- the loop ----------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        reap_orphan(self.state / PID_FILE)
        async with trio.open_nursery() as nursery:
            await nursery.start(self.bus.run)
            nursery.start_soon(self.reporter.run)
            if self.endpoint is not None:
                await nursery.start(self.endpoint.run)
            self.nursery = nursery
            await self.call({"cmd": "requeue_inflight"})
            self.set_state("idle")
            task_status.started()
            log.info("harness ready socket=%s state_dir=%s", self.opts.socket, self.state)
            while not self.stopping:
                msgs: list[dict[str, Any]] = []
                with trio.CancelScope() as self._idle_scope:
                    msgs = await self.next_messages()
                self._idle_scope = None
                if msgs and not self.stopping:
                    await self.turn(msgs)
            await self._drop_conn()
            with trio.move_on_after(2):
                await self.reporter.flushed()
            nursery.cancel_scope.cancel()

    def stop(self) -> None:
        """Graceful stop: no new turn; a running one has `stop_grace` seconds."""
        if self.stopping:
            return
        self.stopping = True
        if self._idle_scope is not None:
            self._idle_scope.cancel()
        if self.nursery is not None:
            self.nursery.start_soon(self._grace)

    async def _grace(self) -> None:
        await trio.sleep(self.opts.stop_grace)
        if self._turn_scope is not None:
            self._turn_scope.cancel()

    def paused(self) -> bool:
        return os.path.lexists(self.state / PAUSED_MARKER)

    async def wait_unpaused(self) -> None:
        announced = False
        while True:
            self.pause_checks += 1
            self.progress.unpark_all()
            if not self.paused():
                return
            if not announced:
                self.bus.emit(busmod.Note(text="paused: no turn starts until resumed"))
                announced = True
            await trio.sleep(self.opts.pause_poll)

    async def next_messages(self) -> list[dict[str, Any]]:
        while True:
            await self.wait_unpaused()
            got = await self.call({"cmd": "recv", "wait_seconds": self.opts.recv_wait, "max": 32})
            msgs: list[dict[str, Any]] = got.get("messages", [])
            if not msgs:
                continue
            if self.paused():  # paused while we waited: they go back, nothing starts
                await self.call({"cmd": "requeue_inflight"})
                continue
            if all(lifecycle_only(m) for m in msgs):
                await self.call({"cmd": "ack_turn", "ids": [m["id"] for m in msgs]})
                self.notes += [str(m["body"]) for m in msgs]
                self.kicks += len(msgs)
                self.progress.unpark_all()
                continue
            return msgs

    # --- one turn ----------------------------------------------------------------------------
    def set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.bus.emit(busmod.TurnStateChanged(state=state, since_unix=int(time.time())))
            self.reporter.add(stream.State(state=state))

    def _sink(self, obj: dict[str, Any] | None, outputs: list[stream.Output]) -> None:
        if obj is not None:
            self.bus.emit(busmod.Stream(obj=obj))
        for out in outputs:
            if isinstance(out, stream.Note):
                self.bus.emit(busmod.Note(text=out.text))
            elif isinstance(out, stream.State):
                self.set_state(out.state)
            else:
                self.reporter.add(out)

    async def turn(self, msgs: list[dict[str, Any]]) -> None:
        try:
            unread = int((await self.call({"cmd": "status"})).get("unread", 0))
        except WireError:
            unread = 0
        wake_from = ", ".join(dict.fromkeys(str(m["from"]) for m in msgs))
        self.bus.emit(
            busmod.TurnStart(
                from_=wake_from,
                unread=unread,
                body="\n\n".join(str(m.get("body", "")) for m in msgs),
            )
        )
        prompt = wake_prompt(msgs, self.notes, unread)
        ids = [int(m["id"]) for m in msgs][:32]
        compacted = False
        while True:
            outcome = await self.attempt(prompt, wake_from, ids)
            kind = outcome.result_kind
            if kind == "prompt_too_long" and not compacted and not self.stopping:
                compacted = True
                self.set_state("compacting")
                await self.attempt("/compact", wake_from, ids, resume=True)
                continue
            if kind == "rate_limited" and not self.stopping:
                self.set_state("rate_limited")
                with trio.CancelScope() as self._idle_scope:
                    await trio.sleep(self.opts.rate_limit_wait)
                self._idle_scope = None
                if not self.stopping:
                    continue
            break
        note = None
        if kind == "ok":
            ids = list(dict.fromkeys([m["id"] for m in msgs] + outcome.summary.popped_ids))
            await self.call({"cmd": "ack_turn", "ids": ids})
            self.notes.clear()
        else:
            note = f"{kind}: {outcome.summary.result or f'exit code {outcome.exit_code}'}"
        self.bus.emit(busmod.TurnEnd(ok=kind == "ok", note=note))
        self.set_state("idle")
        self.completed += 1
        self.progress.unpark_all()

    async def attempt(
        self, prompt: str, wake_from: str, ids: list[int], resume: bool | None = None
    ) -> claude.Outcome:
        """One claude run: the bus gets its lines, the daemon its activity, the stats a row."""
        fresh, has_session = self._session_markers()
        if resume is None:
            resume = has_session and not fresh
        argv = claude.command(
            self.opts.claude_command,
            mcp_config=self._mcp_config(),
            tools=self.opts.tools,
            resume=resume,
            model=self.opts.model,
        )
        env = claude.environment(
            self.opts.env if self.opts.env is not None else os.environ,
            socket=self.opts.socket,
            token=self.token,
        )
        self.set_state("thinking")
        self.reporter.add(stream.TurnStart(message_ids=ids or None))
        parser = stream.StreamParser()
        started = time.time()
        outcome = claude.Outcome(summary=parser.summary)
        with trio.CancelScope() as self._turn_scope:
            outcome = await claude.run(
                argv,
                env=env,
                cwd=str(self.state),
                prompt=prompt,
                sink=self._sink,
                time_limit=self.opts.turn_timeout,
                parser=parser,
                started=self._pid_file,
            )
        self._turn_scope = None
        if self.endpoint is not None:
            self.endpoint.cancel_calls()  # this turn's calls end with it
        _unlink(self.state / PID_FILE)
        ended = time.time()
        s = outcome.summary
        if s.result_seen:
            _touch(self.state / SESSION_MARKER)
            if fresh:
                _unlink(self.state / NEW_SESSION_MARKER)
        kind = outcome.result_kind
        duration_ms = int((ended - started) * 1000)
        if s.model and s.model != self.model:
            self.model = s.model
            self.bus.emit(busmod.ModelChanged(model=s.model))
        if s.usage:
            self.bus.emit(busmod.TokenUsageChanged(usage={**s.usage, "cost_usd": s.cost_usd}))
        self.reporter.add(
            stream.TurnEnd(
                ok=kind == "ok",
                result_kind=kind,
                duration_ms=duration_ms,
                usage=s.usage or {},
                cost_usd=s.cost_usd,
                model=s.model,
                message_ids=ids or None,
                turn_id=secrets.token_hex(16),
                ended_at=time.time(),
            )
        )
        loose, reminders = await self._counts()
        note = None if kind == "ok" else (s.result or f"exit code {outcome.exit_code}")
        if prompt == "/compact":
            note = f"/compact: {note or 'ok'}"
        await self.stats.record(
            TurnRow(
                started_at=started,
                ended_at=ended,
                duration_ms=duration_ms,
                model=s.model,
                wake_from=wake_from,
                result_kind=kind,
                cost_usd=s.cost_usd,
                **s.usage,
                tool_calls=dict(s.tool_calls),
                open_loose_ends=loose,
                pending_reminders=reminders,
                note=stream.preview(note, 1024) if note else None,
            )
        )
        self.turns += 1
        self.progress.unpark_all()
        return outcome

    async def _counts(self) -> tuple[int | None, int | None]:
        """Open loose ends and pending reminders after a turn (best effort, bounded)."""
        loose = reminders = None
        if self.stopping:
            return loose, reminders
        with trio.move_on_after(5):
            try:
                loose = len((await self.call({"cmd": "get_loose_ends"}))["loose_ends"])
                reminders = int((await self.call({"cmd": "count_pending_reminders"}))["count"])
            except (WireError, KeyError, TypeError, ValueError):
                pass
        return loose, reminders

    def _session_markers(self) -> tuple[bool, bool]:
        """(a new session was asked for, a session exists)"""
        return (
            os.path.lexists(self.state / NEW_SESSION_MARKER),
            os.path.lexists(self.state / SESSION_MARKER),
        )

    def _pid_file(self, pid: int) -> None:
        try:
            (self.state / PID_FILE).write_text(f"{pid} {self.token}\n")
        except OSError as e:
            log.warning("cannot write %s: %s", PID_FILE, e)

    def _mcp_config(self) -> str:
        """The mcp-config file naming the server `hive` (0600: it may hold the token)."""
        path = self.state / MCP_CONFIG
        server: dict[str, Any]
        if self.endpoint is not None:
            server = self.endpoint.server_config()
        else:
            server = {
                "type": "stdio",
                "command": self.opts.mcp_command[0],
                "args": self.opts.mcp_command[1:],
                "env": {"HIVE_AGENT_SOCKET": self.opts.socket},
            }
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            os.fchmod(fd, 0o600)  # an older file keeps its mode through O_TRUNC
            f.write(json.dumps({"mcpServers": {"hive": server}}, indent=2))
        os.replace(tmp, path)
        return str(path)


def _touch(path: Path) -> None:
    try:
        path.touch()
    except OSError as e:
        log.warning("cannot write %s: %s", path, e)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warning("cannot remove %s: %s", path, e)


def reap_orphan(pid_file: Path) -> None:
    """Kill the claude group a killed harness left behind, if it is still that claude (its
    environment carries the token written beside its pid)."""
    try:
        pid_s, token = pid_file.read_text().split()
        environ = Path(f"/proc/{int(pid_s)}/environ").read_bytes().split(b"\0")
    except (OSError, ValueError):
        _unlink(pid_file)
        return
    if f"{claude.TURN_TOKEN_ENV}={token}".encode() in environ:
        log.warning("killing claude left running by a previous harness pid=%s", pid_s)
        claude.killpg(int(pid_s))
    _unlink(pid_file)


async def serve(opts: Options) -> None:
    harness = Harness(opts)
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            nursery.start_soon(_on_signals, signals, harness)
            await harness.run()
            nursery.cancel_scope.cancel()


async def _on_signals(signals: Any, harness: Harness) -> None:
    async for _ in signals:
        log.info("stop requested: no new turn")
        harness.stop()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    trio.run(serve, options(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
