"""A fake of the Anthropic Messages API on 127.0.0.1, for the real Claude Code CLI.

Rules kept here:
- answers `HEAD /` (the CLI's connectivity check) and `POST /v1/messages` with Anthropic's SSE
  events (`message_start`, `content_block_*` with `text_delta`/`input_json_delta`,
  `message_delta` with `stop_reason` and `usage`, `message_stop`);
- scripted: each model request takes the next `Step` of `script` (a tool call, a text, a 400
  "prompt is too long", a 429, or `hold`: an answer that waits until the test releases it);
  an empty script answers `DEFAULT_TEXT`; the compaction request (a user text block beginning
  "CRITICAL: Respond with TEXT ONLY") is answered with a summary and takes no step;
- every step has known usage, so the cost the CLI computes is known (`cost_usd`);
- it records every request body it got (`requests`), and tests wait on `wait_requests` (a
  condition, not a sleep).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

DEFAULT_TEXT = "(unscripted answer from the fake API)"
COMPACTION_MARK = "CRITICAL: Respond with TEXT ONLY"
SUMMARY_TEXT = "Summary: the conversation so far was compacted by the fake API."
# claude-sonnet-4-5 list prices, USD per token (what the CLI computes total_cost_usd with)
PRICE_IN, PRICE_OUT = 3e-6, 15e-6


def cost_usd(input_tokens: int, output_tokens: int) -> float:
    return input_tokens * PRICE_IN + output_tokens * PRICE_OUT


@attrs.frozen(kw_only=True)
class Step:
    kind: str  # text | tool | prompt_too_long | rate_limit | bad_request | hold
    text: str = ""
    tool: str = ""
    input: dict[str, Any] = attrs.Factory(dict)
    input_tokens: int = 1000
    output_tokens: int = 10
    release: threading.Event | None = None
    then: str = "text"  # a held step's kind once released


def text(t: str, input_tokens: int = 1000, output_tokens: int = 10) -> Step:
    return Step(kind="text", text=t, input_tokens=input_tokens, output_tokens=output_tokens)


def tool(
    name: str, args: dict[str, Any], input_tokens: int = 1000, output_tokens: int = 10
) -> Step:
    return Step(
        kind="tool", tool=name, input=args, input_tokens=input_tokens, output_tokens=output_tokens
    )


def prompt_too_long() -> Step:
    return Step(kind="prompt_too_long")


def rate_limit() -> Step:
    return Step(kind="rate_limit")


def bad_request(message: str = "the fake API refuses this request") -> Step:
    return Step(kind="bad_request", text=message)


def hold(release: threading.Event, then: str | Step = "released") -> Step:
    """An answer held until `release` is set (or the fake stops), then `then`."""
    step = then if isinstance(then, Step) else text(then)
    return attrs.evolve(step, kind="hold", release=release, then=step.kind)


class FakeAPI:
    def __init__(self) -> None:
        self.script: deque[Step] = deque()
        self.requests: list[dict[str, Any]] = []
        self.arrivals: list[float] = []  # time.monotonic() of each request, as `requests`
        self.compactions = 0
        self.heads = 0
        self._cond = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def add(self, *steps: Step) -> None:
        with self._cond:
            self.script.extend(steps)

    def model_requests(self) -> list[dict[str, Any]]:
        with self._cond:
            return list(self.requests)

    def wait_requests(self, n: int, timeout: float = 30) -> list[dict[str, Any]]:
        """Block until `n` requests arrived (raises TimeoutError); for `trio.to_thread`."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= n, timeout):
                raise TimeoutError(f"{len(self.requests)} requests, wanted {n}")
            return list(self.requests)

    # --- the server ----------------------------------------------------------------------
    def start(self) -> None:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        with self._cond:  # whatever is held is let go
            held = [s.release for s in self.script if s.release is not None]
        for ev in held:
            ev.set()
        self._server.shutdown()
        self._server.server_close()

    def _next(self, body: dict[str, Any]) -> Step | None:
        arrived = time.monotonic()
        with self._cond:
            self.arrivals.append(arrived)
            if is_compaction(body):
                self.compactions += 1
                self.requests.append(body)
                self._cond.notify_all()
                return None
            step = self.script.popleft() if self.script else text(DEFAULT_TEXT)
            self.requests.append(body)
            self._cond.notify_all()
            return step

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                api.heads += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                self._json(
                    404,
                    {
                        "type": "error",
                        "error": {"type": "not_found_error", "message": "fake: no such route"},
                    },
                )

            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(size) or b"{}")
                if not self.path.startswith("/v1/messages") or "count_tokens" in self.path:
                    self._json(
                        404,
                        {
                            "type": "error",
                            "error": {
                                "type": "not_found_error",
                                "message": f"fake: no {self.path}",
                            },
                        },
                    )
                    return
                step = api._next(body)
                if step is None:
                    step = text(SUMMARY_TEXT, input_tokens=500, output_tokens=20)
                elif step.kind == "hold":
                    assert step.release is not None
                    step.release.wait(60)
                    step = attrs.evolve(step, kind=step.then)
                if step.kind == "prompt_too_long":
                    self._json(
                        400,
                        {
                            "type": "error",
                            "error": {
                                "type": "invalid_request_error",
                                "message": "prompt is too long: 212345 tokens > 200000 maximum",
                            },
                        },
                    )
                elif step.kind == "bad_request":
                    self._json(
                        400,
                        {
                            "type": "error",
                            "error": {"type": "invalid_request_error", "message": step.text},
                        },
                    )
                elif step.kind == "rate_limit":
                    self._json(
                        429,
                        {
                            "type": "error",
                            "error": {
                                "type": "rate_limit_error",
                                "message": "Number of request tokens has "
                                "exceeded your per-minute rate limit (fake)",
                            },
                        },
                        {"retry-after": "0"},
                    )
                elif body.get("stream"):
                    self._sse(body, step)
                else:
                    self._json(200, message(body, step))

            def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("request-id", f"req_fake_{uuid.uuid4().hex[:12]}")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _sse(self, body: dict[str, Any], step: Step) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.send_header("request-id", f"req_fake_{uuid.uuid4().hex[:12]}")
                self.end_headers()
                for event, data in sse_events(body, step):
                    self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
                    self.wfile.flush()
                self.close_connection = True

        return Handler


def is_compaction(body: dict[str, Any]) -> bool:
    for msg in body.get("messages", []):
        if msg.get("role") != "user" or not isinstance(msg.get("content"), list):
            continue
        for block in msg["content"]:
            if block.get("type") == "text" and str(block.get("text", "")).startswith(
                COMPACTION_MARK
            ):
                return True
    return False


def _blocks(step: Step) -> list[dict[str, Any]]:
    if step.kind == "tool":
        return [
            {
                "type": "tool_use",
                "id": f"toolu_fake_{uuid.uuid4().hex[:16]}",
                "name": step.tool,
                "input": step.input,
            }
        ]
    return [{"type": "text", "text": step.text}]


def message(body: dict[str, Any], step: Step) -> dict[str, Any]:
    return {
        "id": f"msg_fake_{uuid.uuid4().hex[:16]}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "claude-sonnet-4-5"),
        "content": _blocks(step),
        "stop_reason": "tool_use" if step.kind == "tool" else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": step.input_tokens,
            "output_tokens": step.output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def sse_events(body: dict[str, Any], step: Step) -> Iterator[tuple[str, dict[str, Any]]]:
    msg = message(body, step)
    blocks = msg["content"]
    start = {
        **msg,
        "content": [],
        "stop_reason": None,
        "usage": {**msg["usage"], "output_tokens": 1},
    }
    yield "message_start", {"type": "message_start", "message": start}
    for i, block in enumerate(blocks):
        if block["type"] == "tool_use":
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": i,
                    "content_block": {**block, "input": {}},
                },
            )
            yield (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": i,
                    "delta": {
                        "type": "input_json_delta",
                        "partial_json": json.dumps(block["input"]),
                    },
                },
            )
        else:
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": i,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            yield (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": i,
                    "delta": {"type": "text_delta", "text": block["text"]},
                },
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": i}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": step.output_tokens},
        },
    )
    yield "message_stop", {"type": "message_stop"}


@contextmanager
def running() -> Iterator[FakeAPI]:
    api = FakeAPI()
    api.start()
    try:
        yield api
    finally:
        api.stop()
