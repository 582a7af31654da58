"""Logging setup: one line per event on stderr, `key=value` (logfmt) or JSON lines.

Rules kept here:
- a log call names its fields in the format string (`log.info("agent started name=%s pid=%d",
  name, pid)`); with `--log-json` each field becomes a JSON key (`"name": "alice"`), with the
  text before the first field as `msg`;
- each line starts with its time (`time=2026-01-02T03:04:05.678Z`) unless stderr is journald's
  (`JOURNAL_STREAM` names stderr's device and inode): journald stamps lines itself.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from typing import Any

_FIELD = re.compile(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=%[-#0-9.]*[sdrifgex]")


def to_journald(stream: Any = None) -> bool:
    """Whether `stream` (default stderr) is connected to journald (systemd sets
    `JOURNAL_STREAM=<dev>:<ino>` of the stream it gives a service)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in value.split(":"))
        st = os.fstat((stream or sys.stderr).fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def _time(record: logging.LogRecord) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{stamp}.{int(record.msecs):03d}Z"


def fields(record: logging.LogRecord) -> tuple[str, dict[str, Any]] | None:
    """(text, {field: value}) of a record whose format string names every argument, else
    None."""
    if not isinstance(record.msg, str) or not isinstance(record.args, tuple) or not record.args:
        return None
    keys = _FIELD.findall(record.msg)
    if len(keys) != len(record.args) or len(set(keys)) != len(keys):
        return None
    first = _FIELD.search(record.msg)
    text = record.msg[: first.start()].strip() if first else record.msg
    out = {}
    for key, value in zip(keys, record.args, strict=True):
        plain = isinstance(value, str | int | float | bool) or value is None
        out[key] = value if plain else str(value)
    return text, out


class LogfmtFormatter(logging.Formatter):
    def __init__(self, stamp: bool = True) -> None:
        super().__init__()
        self.stamp = stamp

    def format(self, record: logging.LogRecord) -> str:
        line = f"level={record.levelname.lower()} logger={record.name} msg={record.getMessage()}"
        if self.stamp:
            line = f"time={_time(record)} {line}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def __init__(self, stamp: bool = True) -> None:
        super().__init__()
        self.stamp = stamp

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": _time(record)} if self.stamp else {}
        out.update(level=record.levelname.lower(), logger=record.name)
        split = fields(record)
        if split is None:
            out["msg"] = record.getMessage()
        else:
            text, values = split
            out["msg"] = text
            for key, value in values.items():
                out[key if key not in out else f"field_{key}"] = value
        if record.exc_info:
            out["trace"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def setup(level: str = "info", as_json: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    stamp = not to_journald(sys.stderr)
    handler.setFormatter(JsonFormatter(stamp) if as_json else LogfmtFormatter(stamp))
    root = logging.getLogger("hive_core")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
