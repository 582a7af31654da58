"""The hive's tools for Claude Code over MCP, on the official `mcp` SDK (its low-level `Server`),
run on trio through anyio, for one agent's socket, two ways:
- `hive-core mcp`: a stdio server for the agent whose socket is `$HIVE_AGENT_SOCKET` (default
  `/run/hive/mcp.sock`), started per turn by Claude Code (and by any other MCP client);
- `HttpEndpoint`: the harness's own server for its whole life, over the SDK's streamable HTTP
  transport (stateless, JSON answers) served by hypercorn's trio worker on 127.0.0.1 (an
  ephemeral port), behind a random bearer token; Claude Code reaches it by URL, so no turn
  starts a server (and pays `import mcp`, about 0.7 s) before its first model request.

Rules kept here:
- the tools come from `tools.py` (the verb table); which set (agent, or agent + manager) is
  decided once, by `whoami` on the socket when the tool list is first asked for;
- each call is one request on the socket; the structured result is the socket's answer (the
  harness reads the ids a `recv` popped from it and acks them with the turn: this server never
  acks); an error answer is a tool error with the daemon's sentence;
- a socket that cannot be reached is a tool error naming its path, within `CONNECT_TIMEOUT`;
  every call is bounded (`CALL_TIMEOUT`, the lifecycle verbs' `SLOW`, or
  `$HIVE_MCP_CALL_TIMEOUT`; plus the `recv` wait); a call that timed out or was
  cancelled drops its connection (a late answer must never be read as the next one's);
- connections are kept for the next call (one per concurrent call, a few kept idle); a kept
  connection the daemon closed meanwhile (it restarted) fails on write, before anything was
  sent, and the call is made once more on a fresh one;
- the SDK (and hypercorn) is imported only when serving; the stdio server pays it per turn,
  the HTTP endpoint once;
- HTTP: every request without `Authorization: Bearer <token>` (compared in constant time) is
  answered 401 before the SDK sees it; a client that is not on the loopback is refused 403
  (the bind is 127.0.0.1 anyway); the SDK's DNS-rebinding check allows only loopback `Host`s;
  `cancel_calls` cancels the calls still running when a turn ends (a `recv` left polling must
  not pop the next turn's messages: a call cancelled before its answer was written pops nothing).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import secrets
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import trio

from hive_wire.blocking import check_answer
from hive_wire.client import Connection
from hive_wire.errors import WireError
from hive_wire.verbs import Socket

from . import tools as toolsmod

if TYPE_CHECKING:
    import mcp_types
    from mcp.server.lowlevel import Server

log = logging.getLogger("hive_core.agent.mcp")

DEFAULT_SOCKET = "/run/hive/mcp.sock"
CONNECT_TIMEOUT = 2.0
CALL_TIMEOUT = 60.0  # a verb's answer (lifecycle verbs wait for the backend: see SLOW)
SLOW = {"start": 600.0, "restart": 600.0, "rebuild": 1800.0, "kill": 120.0}
WAIT_CAP = 180  # the daemon's cap on a long-poll
KEEP_IDLE = 4
WHOAMI_TIMEOUT = 5.0  # the role, asked once before the tool list
HTTP_HOST = "127.0.0.1"
HTTP_PATH = "/mcp"
# Claude Code bounds each HTTP request to an MCP server (60 s unless the server's `timeout`, in
# ms, says otherwise): the longest call this server may make, and a margin.
HTTP_TIMEOUT_MS = int((max(SLOW.values()) + WAIT_CAP + 60) * 1000)
INSTRUCTIONS = (
    "The hive: messages between agents, the operator and the manager. Your turn was "
    "woken by messages; `recv` drains more, `send` answers."
)
ENDED = "the turn this call belonged to has ended; the call was cancelled"


class Unreachable(Exception):
    """The socket could not be reached (nothing was sent)."""


class NoAnswer(Exception):
    """The request may have been sent, but no answer came."""


class HiveLink:
    """Requests on the agent socket over kept connections."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._idle: list[Connection] = []

    async def _open(self) -> Connection:
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                return await Connection.open(self.path)
        except trio.TooSlowError:
            raise Unreachable(
                f"the hive is not reachable at {self.path} (no connection within "
                f"{CONNECT_TIMEOUT:g}s)"
            ) from None
        except OSError as e:
            raise Unreachable(
                f"the hive is not reachable at {self.path} ({e.strerror or e})"
            ) from None

    async def call(self, request: dict[str, Any], limit: float = CALL_TIMEOUT) -> dict[str, Any]:
        """The answer's result fields; `WireError` for an error answer, `Unreachable`,
        `NoAnswer`."""
        conn = self._idle.pop() if self._idle else await self._open()
        reused = True
        while True:
            done = False
            try:
                with trio.move_on_after(limit):
                    try:
                        await conn.send(request)
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        if not reused:
                            raise Unreachable(
                                f"the hive is not reachable at {self.path} (connection lost)"
                            ) from None
                        await _close(conn)  # closed while idle: nothing was sent
                        conn, reused = await self._open(), False
                        continue
                    answer = await conn.read()
                    done = True
            except WireError:
                raise
            except (EOFError, trio.BrokenResourceError, OSError, ValueError) as e:
                await _close(conn)
                raise NoAnswer(
                    f"the hive at {self.path} closed the connection before answering ({e}); "
                    "the request may or may not have been carried out"
                ) from None
            except BaseException:  # cancelled mid-request: the answer would come out of turn
                await _close(conn)
                raise
            if not done:
                await _close(conn)
                raise NoAnswer(
                    f"the hive at {self.path} did not answer within {limit:g}s; the request "
                    "may or may not have been carried out"
                )
            if len(self._idle) < KEEP_IDLE:
                self._idle.append(conn)
            else:
                await _close(conn)
            return check_answer(answer)

    async def aclose(self) -> None:
        while self._idle:
            await _close(self._idle.pop())


async def _close(conn: Connection) -> None:
    with trio.CancelScope(shield=True):
        try:
            await conn.aclose()
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass


def timeout_for(tool: toolsmod.Tool, request: Mapping[str, Any], fixed: float | None) -> float:
    """How long a call may take: `fixed` (`$HIVE_MCP_CALL_TIMEOUT`) or the verb's own bound,
    plus the long-poll's wait."""
    base = fixed or SLOW.get(tool.verb or "", CALL_TIMEOUT)
    wait = request.get("wait_seconds")
    if isinstance(wait, int) and not isinstance(wait, bool) and wait > 0:
        base += min(wait, WAIT_CAP)
    return base


class HiveTools:
    """The tool list and the calls, for one socket; no SDK types (see `serve`)."""

    def __init__(self, link: HiveLink, call_timeout: float | None = None) -> None:
        self.link = link
        self.call_timeout = call_timeout
        self._tools: dict[str, toolsmod.Tool] | None = None
        self.role: str | None = None
        self._running: set[trio.CancelScope] = set()

    def cancel_calls(self) -> int:
        """Cancel every call still running (each answers a tool error); how many."""
        for scope in self._running:
            scope.cancel()
        return len(self._running)

    async def tools(self) -> dict[str, toolsmod.Tool]:
        if self._tools is None:
            try:
                limit = self.call_timeout or WHOAMI_TIMEOUT
                self.role = str((await self.link.call({"cmd": "whoami"}, limit))["role"])
            except (Unreachable, NoAnswer, WireError, KeyError) as e:
                # Listed anyway (Claude Code lists once per turn); the calls will say why.
                log.warning("whoami failed: %s", e)
                self.role = "manager" if os.environ.get("HIVE_AGENT_NAME") == "manager" else None
            kind: Socket = "manager" if self.role == "manager" else "agent"
            self._tools = {t.name: t for t in toolsmod.tools_for(kind)}
        return self._tools

    async def call(
        self, name: str, arguments: Mapping[str, Any] | None
    ) -> tuple[str, dict[str, Any], bool]:
        """(text, structured result, is_error) of one tool call."""
        with trio.CancelScope() as scope:
            self._running.add(scope)
            try:
                return await self._call(name, arguments)
            finally:
                self._running.discard(scope)
        return ENDED, {"error": ENDED, "code": "cancelled"}, True

    async def _call(
        self, name: str, arguments: Mapping[str, Any] | None
    ) -> tuple[str, dict[str, Any], bool]:
        tool = (await self.tools()).get(name)
        if tool is None:
            return f"no such tool: {name}", {"error": f"no such tool: {name}"}, True
        args = dict(arguments or {})
        try:
            if tool.verb is None:
                answer = await self.agent_meta(args.get("name"))
            else:
                request = tool.request(args)
                limit = timeout_for(tool, request, self.call_timeout)
                answer = await self.link.call(request, limit)
        except WireError as e:
            return str(e), {"error": str(e), "code": e.code}, True
        except (Unreachable, NoAnswer) as e:
            return str(e), {"error": str(e), "code": "unreachable"}, True
        return toolsmod.text(name, args, answer), answer, False

    async def agent_meta(self, name: Any) -> dict[str, Any]:
        """`get_agent_meta`: `whoami`, and the agent's status row where this socket may see
        it (the manager's)."""
        from hive_wire.errors import BadRequest, Forbidden, NotFound

        if name is not None and not isinstance(name, str):
            raise BadRequest("name: must be a string")
        me = await self.link.call({"cmd": "whoami"})
        target = name or me["name"]
        if me.get("role") != "manager":
            if target != me["name"]:
                raise Forbidden("only the manager can look up another agent; ask the manager")
            return dict(me)
        rows = (await self.link.call({"cmd": "agent_status"}))["agent_statuses"]
        row = next((r for r in rows if r.get("name") == target), None)
        if target == me["name"]:
            return {**me, **({"status": row} if row else {})}
        if row is None:
            raise NotFound(f"no agent named {target}")
        return {"name": target, "role": "agent", "status": row}


def build_server(hive: HiveTools) -> Server[Any]:
    """The SDK's server of the hive's tools (the same for stdio and HTTP)."""
    import mcp_types as types
    from mcp.server.lowlevel import Server

    async def list_tools(ctx: Any, params: Any) -> mcp_types.ListToolsResult:
        return types.ListToolsResult(
            tools=[
                types.Tool(name=t.name, description=t.description, input_schema=t.input_schema)
                for t in (await hive.tools()).values()
            ]
        )

    async def call_tool(ctx: Any, params: mcp_types.CallToolRequestParams) -> Any:
        text, structured, is_error = await hive.call(params.name, params.arguments)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)],
            structured_content=structured,
            is_error=is_error,
        )

    return Server(
        "hive",
        version="1",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def serve(path: str, call_timeout: float | None = None) -> None:
    """Serve MCP on stdin/stdout until stdin closes."""
    from mcp.server.stdio import stdio_server

    link = HiveLink(path)
    server = build_server(HiveTools(link, call_timeout))
    try:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    finally:
        await link.aclose()


# --- the harness's endpoint: streamable HTTP on the loopback -----------------------------------
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _plain(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _loopback(client: Any) -> bool:
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except (TypeError, IndexError, ValueError):
        return False


def guard(token: str, inner: ASGI) -> ASGI:
    """An ASGI app: loopback clients with the bearer token reach `inner` at `HTTP_PATH`;
    lifespan events are answered here."""
    expected = f"Bearer {token}".encode()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if not _loopback(scope.get("client")):
            await _plain(send, 403, "loopback clients only\n", [])
            return
        given = b""
        for key, value in scope["headers"]:
            if key == b"authorization":
                given = value
        if not hmac.compare_digest(given, expected):
            await _plain(
                send, 401, "unauthorized\n", [(b"www-authenticate", b'Bearer realm="hive"')]
            )
            return
        if scope["path"] != HTTP_PATH:
            await _plain(send, 404, "not found\n", [])
            return
        await inner(scope, receive, send)

    return app


class HttpEndpoint:
    """The hive's tools over streamable HTTP for the harness's lifetime (see the top)."""

    def __init__(self, socket: str, call_timeout: float | None = None) -> None:
        self.link = HiveLink(socket)
        self.hive = HiveTools(self.link, call_timeout)
        self.token = secrets.token_urlsafe(32)
        self.url: str | None = None

    def server_config(self) -> dict[str, Any]:
        """The `mcpServers` entry Claude Code connects with."""
        assert self.url is not None, "not serving yet"
        return {
            "type": "http",
            "url": self.url,
            "headers": {"Authorization": f"Bearer {self.token}"},
            "timeout": HTTP_TIMEOUT_MS,
        }

    def cancel_calls(self) -> int:
        return self.hive.cancel_calls()

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; started with the endpoint's URL."""
        from hypercorn.config import Config
        from hypercorn.trio import serve as hypercorn_serve
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
        from mcp.server.transport_security import TransportSecuritySettings

        manager = StreamableHTTPSessionManager(
            app=build_server(self.hive),
            stateless=True,  # one turn's client after another: no session to keep or reap
            json_response=True,
            security_settings=TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=[f"{HTTP_HOST}:*", "localhost:*"],
                allowed_origins=[f"http://{HTTP_HOST}:*", "http://localhost:*"],
            ),
        )
        app = guard(self.token, manager.handle_request)  # type: ignore[arg-type]
        config = Config()
        config.bind = [f"{HTTP_HOST}:0"]
        config.accesslog = None
        config.errorlog = logging.getLogger("hive_core.agent.mcp.http")
        config.graceful_timeout = 1.0
        config.include_server_header = False

        async def hypercorn(task_status: trio.TaskStatus[list[str]]) -> None:
            await hypercorn_serve(app, config, task_status=task_status)  # type: ignore[arg-type]

        try:
            async with manager.run(), trio.open_nursery() as nursery:
                binds: list[str] = await nursery.start(hypercorn)
                self.url = binds[0].rstrip("/") + HTTP_PATH
                log.info("MCP endpoint %s", self.url)
                task_status.started(self.url)
        finally:
            await self.link.aclose()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print(
            "usage: hive-core mcp\n\nServe the hive's tools over MCP on stdin/stdout for the "
            "agent whose socket is $HIVE_AGENT_SOCKET (default /run/hive/mcp.sock)."
        )
        return 0
    logging.basicConfig(level=logging.WARNING, format="hive-core mcp: %(message)s")
    fixed = os.environ.get("HIVE_MCP_CALL_TIMEOUT")
    trio.run(
        serve,
        os.environ.get("HIVE_AGENT_SOCKET") or DEFAULT_SOCKET,
        float(fixed) if fixed else None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
