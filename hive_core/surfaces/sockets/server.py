"""The unix-socket servers: bind, accept, read lines, dispatch, answer.

Rules kept here:
- a socket file gets its mode before anyone can connect (umask around `bind`, then `chmod`
  before `listen`); a stale socket file is reclaimed, a live one (another daemon) is refused, a
  symlink or other file at the path is refused;
- accepting drains the listen queue (deep: `bind.BACKLOG`) before yielding, so a burst of
  connects is taken at once;
- every connection runs in the nursery of its listener; one connection's failure is logged and
  never reaches another connection or the daemon;
- requests on a connection are served one after another; every failure becomes an error
  envelope (`WireError` → its code; anything else → `internal`, logged with its trace);
- a line over the limit is answered `line_too_long` and the connection is closed;
- a verb may turn the connection into a feed (`Feed`): the ack, then one answer per item, while
  a reader task notices the client hanging up;
- a connection past a cap is answered `limit` and closed: `max_connections` for the host
  socket, the same for all agent and manager sockets together, `max_connections_per_agent`
  for each of those (an agent cannot crowd out the operator or the others); a client that starts a
  line and does not finish it within `read_deadline` is dropped (idle connections between
  requests are fine: agents long-poll);
- peer credentials (`SO_PEERCRED`, and `SO_PEERGROUPS` for the groups the peer process holds)
  are read and logged for every connection; the host socket refuses a peer that is neither
  root, the daemon's own user, nor holding the admin group.
"""

from __future__ import annotations

import logging
import math
import os
import select
import socket as stdsocket
from pathlib import Path
from typing import Any

import attrs
import trio

from hive_core.services.answers import Feed, Handler, Undoable
from hive_core.surfaces.sockets.bind import BACKLOG, bind, unlink_socket
from hive_core.surfaces.sockets.peer import is_admin, peer_cred
from hive_wire.codec import LineBuffer, decode_line, encode_line, encode_plain
from hive_wire.convert import (
    decode_request,
    encode_answer,
    error_envelope,
    float_free,
    ok_envelope,
)
from hive_wire.errors import Forbidden, Internal, Limit, WireError

log = logging.getLogger(__name__)


@attrs.frozen
class Surface:
    role: str  # "host" | "manager" | "agent"
    caller: str  # the principal every request on this socket is from
    handlers: dict[str, Handler]  # the verbs this socket serves (from the verb table)
    hive: Any  # what every handler is given


class SocketServer:
    def __init__(
        self,
        line_limit: int,
        admin_group: str,
        max_connections: int = 2048,
        read_deadline: float = 30.0,
        max_connections_per_agent: int = 64,
    ) -> None:
        self.line_limit = line_limit
        self.admin_group = admin_group
        self.max_connections = max_connections
        self.max_connections_per_agent = max_connections_per_agent
        self.read_deadline = read_deadline
        self._scopes: dict[Path, trio.CancelScope] = {}
        self.connections = 0  # all sockets
        # Open connections per pool: the host socket's own, all agent and manager sockets
        # together, and each of those sockets; no agent can take the operator's room.
        self._open: dict[str, int] = {}

    def _refusal(self, surface: Surface) -> Limit | None:
        """Count a new connection on `surface`; a `Limit` if it is past a cap."""
        pools = _pools(surface)
        for pool in pools:
            self._open[pool] = self._open.get(pool, 0) + 1
        if surface.role == "host":
            caps = [self.max_connections]
        else:
            caps = [self.max_connections, self.max_connections_per_agent]
        for pool, cap in zip(pools, caps, strict=True):
            if self._open[pool] > cap:
                log.warning(
                    "connection refused: %d open in %s (cap %d)", self._open[pool] - 1, pool, cap
                )
                return Limit(f"too many connections ({cap}); try again later")
        return None

    def _closed(self, surface: Surface) -> None:
        for pool in _pools(surface):
            self._open[pool] -= 1
            if not self._open[pool]:
                del self._open[pool]

    # --- binding --------------------------------------------------------------------------
    async def listen(
        self,
        nursery: trio.Nursery,
        path: Path,
        surface: Surface,
        mode: int = 0o660,
        group: int | None = None,
    ) -> None:
        """Bind `path` and serve it in `nursery` until `close(path)`."""
        sock = await bind(path, mode, group)
        scope = await nursery.start(self._serve, sock, path, surface)
        self._scopes[path] = scope

    def close(self, path: Path) -> None:
        scope = self._scopes.pop(path, None)
        if scope is not None:
            scope.cancel()

    def close_all(self) -> None:
        for path in list(self._scopes):
            self.close(path)

    async def _serve(
        self,
        sock: trio.socket.SocketType,
        path: Path,
        surface: Surface,
        task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        # Accepting drains the whole listen queue in one go (a burst of connects must not wait
        # one scheduler round each): the syscall on a non-blocking copy of the socket, waiting
        # only when it says EAGAIN.
        raw = stdsocket.socket(fileno=os.dup(sock.fileno()))
        raw.setblocking(False)
        try:
            with trio.CancelScope() as scope:
                task_status.started(scope)
                async with trio.open_nursery() as conns:
                    while True:
                        await trio.lowlevel.wait_readable(raw)
                        for _ in range(BACKLOG):
                            try:
                                conn, _addr = raw.accept()
                            except BlockingIOError:
                                break
                            except OSError as e:  # EMFILE and friends: back off, keep serving
                                log.error("accept failed path=%s error=%s", path, e)
                                await trio.sleep(0.1)
                                break
                            stream = trio.SocketStream(trio.socket.from_stdlib_socket(conn))
                            # Counted here, in accept order (tasks start in any order).
                            self.connections += 1
                            refused = self._refusal(surface)
                            conns.start_soon(self._connection, stream, surface, refused)
        finally:
            unlink_socket(path)  # first: the close below must not be skipped
            raw.close()
            sock.close()

    # --- one connection ---------------------------------------------------------------------
    async def _connection(
        self, stream: trio.SocketStream, surface: Surface, refused: Limit | None
    ) -> None:
        """One accepted connection (already counted; `refused` if past a cap)."""
        cred = peer_cred(stream.socket)
        log.debug("connect role=%s caller=%s peer=%s", surface.role, surface.caller, cred)
        try:
            if refused is not None:
                await stream.send_all(encode_line(error_envelope(refused)))
                return
            if surface.role == "host" and not is_admin(cred, self.admin_group):
                log.warning("refused peer on host socket peer=%s", cred)
                err = Forbidden(
                    "permission denied: the host socket is for root and the "
                    f"{self.admin_group} group"
                )
                await stream.send_all(encode_line(error_envelope(err)))
                return
            await self._requests(stream, surface)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            log.exception("connection failed role=%s caller=%s", surface.role, surface.caller)
        finally:
            self.connections -= 1
            self._closed(surface)
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _requests(self, stream: trio.SocketStream, surface: Surface) -> None:
        buf = LineBuffer(self.line_limit)
        served = 0
        line_deadline = math.inf  # a started line must be finished within `read_deadline`
        while True:
            if line_deadline == math.inf:  # between requests: wait as long as the client likes
                data = await _receive(stream.socket)
            else:
                data = b""
                with trio.move_on_at(line_deadline) as waited:
                    data = await _receive(stream.socket)
                if waited.cancelled_caught:
                    log.info(
                        "dropped a client that left a line unfinished for %.0f s role=%s",
                        self.read_deadline,
                        surface.role,
                    )
                    return
            if not data:
                return
            lines = buf.feed(data)
            for line in lines:
                served += 1
                if served % _FAIR == 0:
                    await trio.lowlevel.checkpoint()
                answer = await self._answer(surface, line)
                if isinstance(answer, _LongPoll):
                    if not await self._long_poll(stream.socket, surface, answer):
                        return  # the client hung up while it waited
                    continue
                if isinstance(answer, Feed):
                    await stream.send_all(encode_line(ok_envelope(answer.ack)))
                    await self._feed(stream, answer)
                    return
                await _respond(stream.socket, surface, answer)
            if buf.overflow is not None:
                await stream.send_all(encode_line(error_envelope(buf.overflow)))
                return
            if not buf.pending:
                line_deadline = math.inf
            elif line_deadline == math.inf or lines:  # a new line begun: its own deadline
                line_deadline = trio.current_time() + self.read_deadline

    async def _answer(self, surface: Surface, line: bytes) -> bytes | Feed | Undoable | _LongPoll:
        """The answer to one request line (encoded, or a feed, or rows to undo if they cannot be
        handed over); a long-polling request is run by `_long_poll`."""
        try:
            cmd, request = decode_request(decode_line(line), surface.handlers)
        except Exception as e:  # noqa: BLE001 - every failure is an answer
            return _refusal(e, "?", surface)
        handler = surface.handlers[cmd]
        if getattr(request, "wait_seconds", 0):
            return _LongPoll(cmd, handler, request)
        return await _run(surface, cmd, handler, request)

    async def _long_poll(
        self, sock: trio.socket.SocketType, surface: Surface, poll: _LongPoll
    ) -> bool:
        """Run a long-polling verb and answer it while watching its connection: a client that
        closes it before the answer (killed, or given up) must not have a message popped for
        it, which would only be put back after newer ones were served, or acked by a bare
        `ack_turn` meanwhile. False if it hung up. A half-closed client (shut its writing side)
        still gets its answer; so does one that sent its next request already (it is read
        after this answer). The answer is written before the watcher is taken down, so a
        woken long-poll answers without waiting for that."""
        answer: bytes | Undoable | None = None
        failed: BaseException | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch, sock, nursery.cancel_scope)
            try:
                got = await _run(surface, poll.cmd, poll.handler, poll.request)
                if isinstance(got, Feed):  # no verb does; answered as any bug is
                    got = _refusal(
                        RuntimeError(f"{poll.cmd}: a long-poll became a feed"), poll.cmd, surface
                    )
                await _write(sock, got)
                answer = got
            except trio.Cancelled:
                raise
            except BaseException as e:  # noqa: BLE001 - raised below, not in the nursery's group
                failed = e
            nursery.cancel_scope.cancel()
        if failed is not None:
            raise failed
        if answer is None:
            log.debug("long-poll abandoned cmd=%s caller=%s", poll.cmd, surface.caller)
            return False
        await _finish(surface, answer)
        return True

    async def _feed(self, stream: trio.SocketStream, feed: Feed) -> None:
        async def hangup(cancel: trio.CancelScope) -> None:
            try:
                while await stream.receive_some(4096):
                    pass  # a feed reads no further requests
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # a reset is a hang-up too
            cancel.cancel()

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(hangup, nursery.cancel_scope)
                try:
                    async for item in feed.items:
                        await stream.send_all(encode_line(ok_envelope(item)))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass  # the subscriber hung up: the feed ends, nothing to report
                nursery.cancel_scope.cancel()
        finally:
            aclose = getattr(feed.items, "aclose", None)
            if aclose is not None:
                with trio.CancelScope(shield=True):
                    await aclose()


# Reads and writes on a connection: a write is the system call first, with a wait only when it
# would block; a read waits for readability first (see `_receive`). trio's SocketStream yields
# to the scheduler after every successful call, two extra turns of the loop per request. A
# connection yields in its wait for the next line; one that pipelines requests yields every
# `_FAIR` of them.
_FAIR = 16


def _pools(surface: Surface) -> list[str]:
    """The connection pools a connection on `surface` counts in (see `SocketServer._open`)."""
    if surface.role == "host":
        return ["host"]
    return ["agents", f"{surface.role}:{surface.caller}"]


@attrs.frozen
class _LongPoll:
    cmd: str
    handler: Handler
    request: Any


def _refusal(e: Exception, cmd: str, surface: Surface) -> bytes:
    """The error answer for a failed request: a `WireError` with its code; anything else is
    `internal`, logged with its trace."""
    if isinstance(e, WireError):
        log.debug("refused cmd=%s caller=%s code=%s error=%s", cmd, surface.caller, e.code, e)
        return encode_line(error_envelope(e))
    log.error("internal error cmd=%s caller=%s", cmd, surface.caller, exc_info=e)
    err = Internal("internal error; the daemon log has the details")
    return encode_line(error_envelope(err))


async def _run(
    surface: Surface, cmd: str, handler: Handler, request: Any
) -> bytes | Feed | Undoable:
    """Run the verb: its answer encoded, or its feed, or its rows to undo."""
    try:
        result = await handler(surface.hive, surface.caller, request)
        if isinstance(result, Feed | Undoable):
            return result
        envelope = ok_envelope(result)
    except Exception as e:  # noqa: BLE001 - every failure is an answer
        return _refusal(e, cmd, surface)
    # Outside the try, as always: a line that cannot be encoded fails the connection.
    return encode_plain(envelope) if float_free(result) else encode_line(envelope)


async def _respond(
    sock: trio.socket.SocketType, surface: Surface, answer: bytes | Undoable
) -> None:
    """Write the answer, then finish it (`_finish`)."""
    await _write(sock, answer)
    await _finish(surface, answer)


async def _write(sock: trio.socket.SocketType, answer: bytes | Undoable) -> None:
    """Write the answer; rows that cannot be handed over (hung up, or cancelled mid-line) go
    back."""
    if not isinstance(answer, Undoable):
        await _send(sock, answer)
        return
    try:
        await _send(sock, encode_answer(answer.result))
    except BaseException:  # hung up, or cancelled mid-line: nobody has it
        with trio.CancelScope(shield=True):
            await answer.undo()
        raise


async def _finish(surface: Surface, answer: bytes | Undoable) -> None:
    """An answer that acks what it handed over acks once it is written (whether or not the
    client stays: a CLI reads its answer and exits)."""
    if isinstance(answer, Undoable) and answer.done is not None:
        try:
            await answer.done()
        except WireError as e:  # answered already; the rows stay in flight
            log.warning("after answering role=%s caller=%s: %s", surface.role, surface.caller, e)


async def _watch(sock: trio.socket.SocketType, cancel: trio.CancelScope) -> None:
    """Cancel `cancel` if the client closes both directions (readable with a hang-up)."""
    await trio.lowlevel.wait_readable(sock)
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    if any(ev & (select.POLLHUP | select.POLLERR) for _, ev in poller.poll(0)):
        cancel.cancel()  # both directions closed: nobody will read the answer


async def _receive(sock: trio.socket.SocketType) -> bytes:
    """Up to 64 KiB from `sock`; b"" at end of stream or a reset. It waits for readability
    first: a client waits for each answer before it sends its next line, so a read tried first
    would almost always fail (a wasted system call and exception per request); a client that
    pipelines finds its lines there at the next turn of the loop."""
    await trio.lowlevel.wait_readable(sock)
    while True:
        try:
            return os.read(sock.fileno(), 65536)
        except BlockingIOError:
            await trio.lowlevel.wait_readable(sock)
        except ConnectionResetError:
            return b""
        except OSError as e:
            raise trio.BrokenResourceError(str(e)) from e


async def _send(sock: trio.socket.SocketType, data: bytes) -> None:
    """All of `data` to `sock`; BrokenResourceError if the peer is gone."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(sock.fileno(), view) :]
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)
        except OSError as e:
            raise trio.BrokenResourceError(str(e)) from e
