"""The dashboard's HTTP surface: a Starlette app over a `Hive`, served by Hypercorn's trio
worker inside the daemon's nursery (`serve_dashboard`).

Rules kept here:
- no logic of its own: `POST /api/VERB` is generated from the verb table (the host socket's
  `call` verbs; `poll` and `feed` verbs are 404) and runs the same handler with the same caller
  (`operator`), the same strict decoding and the same envelope as the host socket; reads are
  compositions of those handlers (`/api/state`) or the event channel's history;
- every answer is JSON with the envelope's status mapping (guards.STATUS); every failure that
  is not a `WireError` is logged with its trace and answered `internal` (500);
- the pages and their scripts are files of the package (`static/`), nothing from elsewhere;
- `/api/state` takes its `seq` first: whatever it shows happened at or after that seq, so a
  client that subscribed first drops buffered events with `seq <= it` and loses nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from hive_core.config import dashboard_address
from hive_core.services import api
from hive_core.services.answers import Feed, Undoable
from hive_core.surfaces.http.guards import Guards, status_of
from hive_core.surfaces.http.sse import Stream
from hive_wire import requests as rq
from hive_wire.codec import decode_line, encode_line
from hive_wire.convert import converter, decode_request, error_envelope, ok_envelope
from hive_wire.errors import BadRequest, Internal, NotFound, UnknownCommand, WireError
from hive_wire.names import check_agent_name
from hive_wire.verbs import VERBS

if TYPE_CHECKING:
    from hive_core.app import Hive

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
HISTORY_LIMIT = 500
HISTORY_MAX = 5000
ACTIVITY_LIMIT = 200
ACTIVITY_MAX = 2000
INBOX_PEEK = 300
GRACE = 1.0  # seconds requests in flight get when the daemon stops

# The verbs served as POST /api/VERB: the host socket's, answering once.
POST_VERBS = {name: v for name, v in VERBS.items() if "host" in v.sockets and v.mode == "call"}


def _json(obj: Any, status: int = 200) -> Response:
    return Response(
        encode_line(obj),
        status,
        media_type="application/json",
        headers={"cache-control": "no-store"},
    )


def _error(err: WireError, status: int | None = None) -> Response:
    return _json(error_envelope(err), status or status_of(err))


def _int(request: Request, name: str, default: int, low: int, high: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 18:
        raise BadRequest(f"{name}: expected a non-negative integer")
    value = int(raw)
    if value < low:
        raise BadRequest(f"{name}: must be at least {low}")
    return value if high is None else min(value, high)


def build_app(hive: Hive, bind_host: str) -> Guards:
    """The dashboard as an ASGI app (the guards in front of Starlette)."""
    stream = Stream(hive.events, hive.stopping)

    async def guarded(request: Request, handler: Any) -> Response:
        try:
            response: Response = await handler(request)
            return response
        except WireError as e:
            return _error(e)
        except Exception:
            log.exception("dashboard: internal error path=%s", request.url.path)
            return _error(Internal("internal error; the daemon log has the details"))

    def route(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            return await guarded(request, handler)

        return endpoint

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-store"})

    async def agent_page(request: Request) -> Response:
        try:
            check_agent_name(request.path_params["name"])
        except BadRequest as e:
            raise NotFound(str(e)) from None
        return FileResponse(STATIC / "agent.html", headers={"cache-control": "no-store"})

    async def state(request: Request) -> Response:
        return _json(await snapshot(hive))

    async def history(request: Request) -> Response:
        since = _int(request, "since_seq", 0, 0)
        limit = _int(request, "limit", HISTORY_LIMIT, 1, HISTORY_MAX)
        seq, rows = await hive.events.page(since, limit)
        body = f'{{"seq":{seq},"events":[{",".join(text for _, text in rows)}]}}\n'
        return Response(
            body.encode(), media_type="application/json", headers={"cache-control": "no-store"}
        )

    async def state_at(request: Request) -> Response:
        if "seq" not in request.query_params:
            raise BadRequest("seq: required")
        seq, at, agents = await hive.events.agents_at(_int(request, "seq", 0, 0))
        return _json({"seq": seq, "at": at, "agents": agents})

    async def activity(request: Request) -> Response:
        name = request.query_params.get("agent", "")
        if not name or len(name) > 64:
            raise BadRequest("agent: required, at most 64 characters")
        limit = _int(request, "limit", ACTIVITY_LIMIT, 1, ACTIVITY_MAX)
        seq = hive.events.seq
        return _json({"seq": seq, "activity": hive.activity.history(name, limit)})

    async def post_verb(request: Request) -> Response:
        verb = request.path_params["verb"]
        if verb not in POST_VERBS:
            raise UnknownCommand(
                f"unknown command {verb[:64]!r} (POST /api/VERB serves the "
                "host socket's verbs that answer once)"
            )
        body = await request.body()
        obj = decode_line(body) if body.strip() else {}
        obj["cmd"] = verb
        cmd, req = decode_request(obj, POST_VERBS)
        result = await api.HANDLERS[cmd](hive, "operator", req)
        if isinstance(result, Feed | Undoable):  # not for a `call` verb; never half-served
            raise Internal(f"{cmd}: not an answer for HTTP")
        return _json(ok_envelope(result))

    async def not_found(request: Request) -> Response:
        raise NotFound(f"no route {request.method} {request.url.path}")

    routes = [
        Route("/", route(index), methods=["GET", "HEAD"]),
        Route("/agents/{name}", route(agent_page), methods=["GET", "HEAD"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Route("/api/state", route(state), methods=["GET"]),
        Route("/api/activity", route(activity), methods=["GET"]),
        Route("/api/{verb}", route(post_verb), methods=["POST"]),
        Route("/dashboard/stream", stream, methods=["GET"]),
        Route("/dashboard/history", route(history), methods=["GET"]),
        Route("/dashboard/state_at", route(state_at), methods=["GET"]),
        Route(
            "/{path:path}",
            route(not_found),
            methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"],
        ),
    ]
    app = Starlette(routes=routes)
    return Guards(app, bind_host, hive.config.dashboard_hosts)


async def snapshot(hive: Hive) -> dict[str, Any]:
    """`/api/state`: the cold-load snapshot, keys in the spec's order, `seq` taken first."""
    seq = hive.events.seq

    async def answer(verb: str, req: Any, key: str) -> Any:
        return converter.unstructure(await api.HANDLERS[verb](hive, "operator", req))[key]

    inbox = await hive.broker.peek("operator", INBOX_PEEK)
    return {
        "seq": seq,
        "agents": await answer("agent_status", rq.AgentStatus(), "agent_statuses"),
        "approvals": await answer("pending", rq.Pending(), "approvals"),
        "questions": await answer("questions", rq.Questions(), "questions"),
        "transients": dict(sorted(hive.lifecycle.transients.items())),
        "tombstones": await answer("tombstones", rq.Tombstones(), "tombstones"),
        "reminders": await answer("reminders", rq.Reminders(), "reminders"),
        "dead_letters": await answer("dead_letters", rq.DeadLetters(), "messages"),
        "inbox": converter.unstructure(api.messages.delivered(inbox))["messages"],
    }


async def serve_dashboard(
    hive: Hive, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the dashboard on `dashboard_listen` until the daemon stops; started with its
    address (`http://HOST:PORT/`, the port bound when 0 was asked)."""
    address = dashboard_address(hive.config.dashboard_listen)
    assert address is not None
    host, port = address
    config = HypercornConfig()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")  # through the daemon's own logging
    config.graceful_timeout = GRACE
    config.keep_alive_timeout = 75
    config.include_server_header = False
    app = build_app(hive, host)

    async def stopped() -> None:
        await hive.stopping.wait()

    async def run(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        await hypercorn_serve(
            app,  # type: ignore[arg-type]  # Starlette's ASGI types, not hypercorn's TypedDicts
            config,
            shutdown_trigger=stopped,
            task_status=task_status,
        )

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(run)
        url = binds[0].rstrip("/") + "/"
        task_status.started(url)
