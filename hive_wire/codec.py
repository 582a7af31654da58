"""Sans-io framing: bytes in, JSON objects out; objects in, bytes out.

Rules kept here:
- one JSON object per line, UTF-8, `\\n`-terminated (a trailing `\\r` is JSON whitespace and is
  accepted);
- a line longer than `limit` bytes sets `LineBuffer.overflow` (a `LineTooLong`): the caller answers
  the lines before it, then the overflow, and closes, since the rest of that line cannot be
  resynchronised cheaply;
- every other malformed line raises `BadJson` and the stream stays usable: invalid UTF-8, invalid
  JSON, a non-object, nesting deeper than `MAX_DEPTH`, integers longer than `MAX_INT_DIGITS`,
  `NaN`/`Infinity`, lone surrogates and NUL characters;
- nothing here does I/O;
- a C parser (orjson) reads a line first; whenever it refuses the line, or the line could be read
  differently by it (an integer of 19 digits or more: orjson turns those past 64 bits into
  floats), or the checks below could object (a `\\u0000` escape, more than 63 brackets), the
  line goes through the stdlib decoder and the checks as before, so what is accepted and every
  error message stay those of the stdlib path;
- `encode_line` is the stdlib's compact, non-ASCII-preserving encoder; `encode_plain` gives the
  same bytes through orjson for objects known to hold no float (orjson writes floats and NaN
  differently), falling back to `encode_line` for anything orjson refuses.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from .errors import BadJson, LineTooLong

WIRE_VERSION = 1
DEFAULT_LINE_LIMIT = 1 << 20
MAX_DEPTH = 64
MAX_INT_DIGITS = 20


class LineBuffer:
    """Accumulates received bytes and hands out complete lines (without the `\\n`).

    `feed` returns every complete line; when the data also holds (or starts) a line over the
    limit, `overflow` is set after the lines before it were returned: answer those, then the
    overflow, then close.
    """

    def __init__(self, limit: int = DEFAULT_LINE_LIMIT) -> None:
        self.limit = limit
        self.overflow: LineTooLong | None = None
        self._buf = bytearray()
        self._scan_from = 0

    def feed(self, data: bytes) -> list[bytes]:
        if self.overflow is not None:
            return []
        self._buf += data
        lines: list[bytes] = []
        start = 0
        while True:
            nl = self._buf.find(b"\n", max(start, self._scan_from))
            if nl < 0:
                break
            if nl - start > self.limit:
                self.overflow = LineTooLong(f"request line longer than {self.limit} bytes")
                self._buf.clear()
                return lines
            lines.append(bytes(self._buf[start:nl]))
            start = nl + 1
            self._scan_from = start
        if start:
            del self._buf[:start]
        self._scan_from = len(self._buf)
        if len(self._buf) > self.limit:
            self.overflow = LineTooLong(f"request line longer than {self.limit} bytes")
            self._buf.clear()
        return lines

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a complete line."""
        return len(self._buf)


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise BadJson(f"integer with more than {MAX_INT_DIGITS} digits")
    return int(text)


def _parse_constant(name: str) -> Any:
    raise BadJson(f"{name} is not valid JSON")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadJson(f"number {text[:40]} is out of range")
    return value


_DECODER = json.JSONDecoder(
    parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant
)


def _check(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise BadJson(f"nesting deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        _check_str(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_str(key)
            _check(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check(item, depth + 1)


def _check_str(text: str) -> None:
    if "\x00" in text:
        raise BadJson("NUL character in a string")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadJson("lone surrogate in a string") from None


# Lines the C parser may not take alone: a digit run that may be past 64 bits, a NUL escape.
_SLOW = re.compile(rb"[0-9]{19}|\\u0000")


def decode_line(line: bytes) -> dict[str, Any]:
    """One request or answer line to a JSON object, or `BadJson`."""
    if _SLOW.search(line) is None and line.count(b"[") + line.count(b"{") < MAX_DEPTH:
        try:
            fast = orjson.loads(line)
        except orjson.JSONDecodeError:
            pass  # the stdlib path below says what is wrong, in its words
        else:
            if type(fast) is dict:
                return fast
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadJson(f"line is not valid UTF-8 (byte {e.start})") from None
    try:
        value = _DECODER.decode(text)
    except BadJson:
        raise
    except (ValueError, RecursionError) as e:
        raise BadJson(f"invalid JSON: {e}") from None
    if not isinstance(value, dict):
        raise BadJson(f"expected a JSON object, got {type(value).__name__}")
    _check(value, 1)
    return value


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # built once, not per line


def encode_line(obj: dict[str, Any]) -> bytes:
    """A JSON object to one line; keys keep their insertion order."""
    return _ENCODER.encode(obj).encode("utf-8") + b"\n"


_PLAIN = orjson.OPT_APPEND_NEWLINE


def encode_plain(obj: dict[str, Any]) -> bytes:
    """`encode_line` for an object that holds no float anywhere (the caller knows it from the
    types): the same bytes, through orjson. Anything orjson refuses (an integer past 64 bits, a
    lone surrogate, a key that is not a string) goes the stdlib way, with its result or error."""
    try:
        return orjson.dumps(obj, option=_PLAIN)
    except TypeError:  # orjson.JSONEncodeError
        return encode_line(obj)
