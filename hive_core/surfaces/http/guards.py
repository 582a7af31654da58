"""The dashboard's guards: who may talk to it at all, and what a POST must look like.

Rules kept here (dashboard.md, "HTTP surface"):
- `Host` must name the bind address, `localhost`, `127.0.0.1` or `[::1]`, with the port the
  request came in on, or one of `dashboard_hosts` (with or without that port): anything else is
  403, so a page on another site cannot reach the dashboard through DNS rebinding;
- a POST whose `Origin` is not this very site (`http://<Host>`) is 403, `Origin: null` too; a POST
  without `Content-Type: application/json` is 415 (no form can send one cross-site without a
  CORS preflight, which is never answered);
- a request body is at most `MAX_BODY` bytes (413), by `Content-Length` up front and counted as it
  arrives (a chunked body has none);
- every refusal is the socket's error envelope, with its HTTP status.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hive_wire.codec import encode_line
from hive_wire.convert import error_envelope
from hive_wire.errors import BadRequest, Forbidden, TooLarge, WireError

MAX_BODY = 1 << 20
LOOPBACK = ("localhost", "127.0.0.1", "[::1]")


# Wire code -> HTTP status (dashboard.md): one table for every route.
STATUS = {
    "bad_json": 400,
    "bad_request": 400,
    "line_too_long": 413,
    "unknown_command": 404,
    "not_found": 404,
    "conflict": 409,
    "forbidden": 403,
    "too_large": 413,
    "limit": 429,
    "unavailable": 503,
    "internal": 500,
}


def status_of(err: WireError) -> int:
    return STATUS.get(err.code, 500)


async def send_error(send: Send, err: WireError, status: int | None = None) -> None:
    body = encode_line(error_envelope(err))
    await send(
        {
            "type": "http.response.start",
            "status": status or status_of(err),
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class Guards:
    """ASGI middleware in front of the whole dashboard."""

    def __init__(
        self, app: ASGIApp, bind_host: str, names: Iterable[str] = (), max_body: int = MAX_BODY
    ) -> None:
        self.app = app
        self.max_body = max_body
        host = f"[{bind_host}]" if ":" in bind_host else bind_host
        self.hosts = {host.lower(), *LOOPBACK}
        self.names = {n.lower() for n in names}

    def host_allowed(self, host: str | None, port: int | None) -> bool:
        if not host:
            return False
        host = host.lower()
        if host in self.names:
            return True
        if port == 80 and host in self.hosts:  # browsers leave the default port out
            host = f"{host}:80"
        name, _, given = host.rpartition(":")
        if not name or not given.isdigit() or port is None or int(given) != port:
            return False
        return name in self.hosts or name in self.names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        server = scope.get("server") or (None, None)
        host = _header(scope, b"host")
        if not self.host_allowed(host, server[1]):
            await send_error(send, Forbidden(f"Host {host!r} is not this dashboard's address"))
            return
        if scope["method"] not in ("GET", "HEAD"):
            origin = _header(scope, b"origin")
            if origin is not None and origin.lower() != f"http://{host}".lower():
                await send_error(send, Forbidden(f"Origin {origin!r} is another site"))
                return
            ctype = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
            if ctype != "application/json":
                await send_error(send, BadRequest("Content-Type must be application/json"), 415)
                return
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await send_error(send, TooLarge(f"request body over {self.max_body} bytes"))
            return
        await self.app(scope, _capped(receive, self.max_body), send)


def _capped(receive: Receive, limit: int) -> Receive:
    """`receive` that fails with `TooLarge` once the body passes `limit` bytes."""
    seen = 0

    async def capped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise TooLarge(f"request body over {limit} bytes")
        return message

    return capped
