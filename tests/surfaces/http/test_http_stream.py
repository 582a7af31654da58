"""`/dashboard/stream` (Server-Sent Events) and the persisted history, through real TCP to the
daemon: an event caused on the host socket arrives as `id:` + `data:`; `Last-Event-ID` resumes
from the history; a reader that froze, or asks from too far back, gets `lagged`; `: ping` after
15 s of silence; the history and `seq` survive a restart; SIGTERM is quick with streams open.
"""

from __future__ import annotations

import codecs
import json
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import h11
import httpx
import pytest
import trio

from hive_core.app import Hive
from hive_core.services.events import EventChannel
from hive_core.surfaces.http import sse
from hive_wire.blocking import call_sync
from tests.helpers import Daemon, agent_sock, ok, send, spawn_idle


@pytest.fixture
def hive_config() -> dict[str, Any]:
    return {"dashboard_listen": "127.0.0.1:0"}


class Stream:
    """A small SSE client on h11: messages as dicts (`id`, `data` decoded, or `comment`)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)
        self.buf = ""
        self.status = 0
        self.decoder = codecs.getincrementaldecoder("utf-8")()

    @classmethod
    @asynccontextmanager
    async def open(cls, port: int, **headers: str) -> AsyncIterator[Stream]:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            self = cls(stream)
            head = [("Host", f"127.0.0.1:{port}"), ("Accept", "text/event-stream")]
            head += [(k.replace("_", "-"), v) for k, v in headers.items()]
            request = h11.Request(method="GET", target="/dashboard/stream", headers=head)
            await stream.send_all(self.conn.send(request) or b"")
            await stream.send_all(self.conn.send(h11.EndOfMessage()) or b"")
            yield self

    async def _more(self) -> bool:
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.stream.receive_some(65536))
                continue
            if isinstance(event, h11.Response):
                self.status = event.status_code
                continue
            if isinstance(event, h11.Data):
                self.buf += self.decoder.decode(bytes(event.data))
                return True
            return False  # end of message, or closed

    async def next(self) -> dict[str, Any]:
        while "\n\n" not in self.buf:
            if not await self._more():
                raise EOFError("the stream ended")
        block, self.buf = self.buf.split("\n\n", 1)
        out: dict[str, Any] = {}
        for line in block.split("\n"):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "":
                out["comment"] = value
            elif field == "data":
                out["data"] = json.loads(value)
            else:
                out[field] = value
        return out

    async def event(self) -> dict[str, Any]:
        """The next message that is an event (comments skipped); its data, checked."""
        while True:
            msg = await self.next()
            if "data" in msg:
                assert "event" not in msg  # the default type: EventSource.onmessage sees it
                assert msg["id"] == str(msg["data"]["seq"]), msg
                data: dict[str, Any] = msg["data"]
                return data

    async def until(self, last: Any) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        with trio.fail_after(30):
            while not events or not last(events[-1]):
                events.append(await self.event())
        return events


def port(hive: Hive) -> int:
    assert hive.dashboard_url
    return int(hive.dashboard_url.rstrip("/").rpartition(":")[2])


def sent(msg_id: int) -> Any:
    return lambda e: e["kind"] == "sent" and e["id"] == msg_id


async def test_an_event_caused_on_the_host_socket_arrives(hive: Hive) -> None:
    await spawn_idle(hive, "alice")
    host = str(hive.paths.host_socket)
    async with Stream.open(port(hive)) as stream:
        hello = await stream.next()
        assert stream.status == 200 and hello == {"comment": "hello"}
        before = hive.events.seq
        msg_id = await send(host, "alice", "over the socket")
        events = await stream.until(sent(msg_id))
    assert events[0]["seq"] == before + 1
    assert (events[-1]["from"], events[-1]["to"], events[-1]["preview"]) == (
        "operator",
        "alice",
        "over the socket",
    )


async def test_last_event_id_resumes_from_the_history(hive: Hive) -> None:
    await spawn_idle(hive, "alice")
    host = str(hive.paths.host_socket)
    mark = hive.events.seq
    ids = [await send(host, "alice", f"while away {i}") for i in range(5)]
    await hive.events.flush()  # part from SQLite ...
    ids.append(await send(host, "alice", "not written yet"))  # ... part from memory
    async with Stream.open(port(hive), Last_Event_ID=str(mark)) as stream:
        replayed = await stream.until(sent(ids[-1]))
        live = await send(host, "alice", "live again")
        rest = await stream.until(sent(live))
    seqs = [e["seq"] for e in replayed + rest]
    assert seqs == list(range(mark + 1, seqs[-1] + 1))  # no gap, nothing twice
    assert [e["id"] for e in replayed if e["kind"] == "sent" and e["to"] == "alice"] == ids


async def test_last_event_id_too_far_back_is_lagged(
    hive: Hive, monkeypatch: pytest.MonkeyPatch
) -> None:
    await spawn_idle(hive, "alice")
    host = str(hive.paths.host_socket)
    for i in range(5):
        await send(host, "alice", f"m{i}")
    monkeypatch.setattr(sse, "CATCH_UP_MAX", 3)
    async with Stream.open(port(hive), Last_Event_ID="0") as stream:
        first = await stream.event()
        assert first["kind"] == "lagged" and first["seq"] == hive.events.seq
        live = await send(host, "alice", "after the lag")
        rest = await stream.until(sent(live))
    assert rest[0]["seq"] > first["seq"]


async def test_a_frozen_reader_lags_and_slows_nobody(hive: Hive) -> None:
    """A client that stops reading: the daemon goes on (every request answered), its stream's
    buffer overflows into a `lagged` message, and it resumes with the newest events."""
    hive.events.buffer = 200  # what one subscription holds (read when it subscribes)
    host = str(hive.paths.host_socket)
    wide = [{"kind": "text", "preview": "\N{HONEYBEE}" * 600}] * 64
    names = [f"a{n}" for n in range(10)]
    await spawn_idle(hive, *names)
    async with Stream.open(port(hive)) as stream:
        await stream.next()  # subscribed
        start = hive.events.seq
        with trio.fail_after(60):  # nobody reads `stream` meanwhile
            for n in range(150):  # 9,600 events of ~2 KiB: far more than TCP buffers hold
                sock = agent_sock(hive, names[n // 15])  # ten agents, each within its rate
                await ok(sock, {"cmd": "activity", "events": wide})
        marker = await send(host, "operator", "after the flood")
        events = await stream.until(sent(marker))
    lagged = [e for e in events if e["kind"] == "lagged"]
    assert lagged, "no lagged message"
    assert len(events) < hive.events.seq - start
    seqs = [e["seq"] for e in events if e["kind"] != "lagged"]
    assert seqs == sorted(set(seqs))
    assert events[-1]["seq"] > lagged[-1]["seq"]


async def test_a_ping_after_fifteen_seconds_of_silence(autojump_clock: Any) -> None:
    channel = EventChannel()
    stream = sse.Stream(channel, trio.Event())
    sent_chunks: list[bytes] = []
    pinged = trio.Event()

    async def receive() -> dict[str, Any]:
        await trio.sleep_forever()
        raise AssertionError

    async def send_(message: dict[str, Any]) -> None:
        sent_chunks.append(message.get("body", b""))
        if message.get("body") == b": ping\n\n":
            pinged.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream, {"type": "http", "headers": []}, receive, send_)
        start = trio.current_time()
        await pinged.wait()
        assert trio.current_time() - start == pytest.approx(sse.PING)
        nursery.cancel_scope.cancel()
    assert sent_chunks[:2] == [b"", b": hello\n\n"]


# --- a daemon process: restarts and SIGTERM ---------------------------------------------------
def dashboard(d: Daemon) -> str:
    answer = call_sync(d.host, {"cmd": "urls"}, timeout=10)
    url: str = answer["urls"]["home"]
    return url


def started(base: Path) -> Daemon:
    d = Daemon(base, {"HIVE_DASHBOARD": "127.0.0.1:0"})
    d.start()
    return d


def test_history_and_seq_survive_a_restart(dirs: Path) -> None:
    d = started(dirs)
    try:
        call_sync(d.host, {"cmd": "spawn", "name": "alice", "command": ["sleep", "3600"]})
        for i in range(3):
            call_sync(d.host, {"cmd": "send", "to": "alice", "body": f"before {i}"})
        with httpx.Client(base_url=dashboard(d), timeout=30) as web:
            before = web.get("/dashboard/history", params={"limit": 5000}).json()
            spawned = web.get("/api/state").json()["seq"]
        assert d.stop() == 0
        d = started(dirs)
        call_sync(d.host, {"cmd": "send", "to": "alice", "body": "after"})
        with httpx.Client(base_url=dashboard(d), timeout=30) as web:
            after = web.get("/dashboard/history", params={"limit": 5000}).json()
            replay = web.get("/dashboard/state_at", params={"seq": spawned}).json()
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.stop()  # SIGTERM: the daemon stops alice too (a kill would leave her running)
    old = before["events"]
    assert after["events"][: len(old)] == old  # what the first daemon published, as it was
    new = after["events"][len(old) :]
    assert new and new[0]["seq"] > old[-1]["seq"]  # seq continues
    seqs = [e["seq"] for e in after["events"]]
    assert seqs == sorted(set(seqs))
    assert any(e["kind"] == "sent" and e["preview"] == "after" for e in new)
    assert [r["name"] for r in replay["agents"]] == ["alice"]


def test_sigterm_is_quick_with_streams_open(dirs: Path) -> None:
    d = started(dirs)
    url = dashboard(d)
    clients = [httpx.Client(base_url=url, timeout=30) for _ in range(5)]
    responses = []
    try:
        for client in clients:
            r = client.send(client.build_request("GET", "/dashboard/stream"), stream=True)
            assert r.status_code == 200
            responses.append(r)
        assert d.proc is not None
        began = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(timeout=30) == 0
        took = time.monotonic() - began
    finally:
        for r in responses:
            r.close()
        for client in clients:
            client.close()
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
    assert took < 10, f"SIGTERM took {took:.1f} s with streams open"
