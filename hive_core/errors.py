"""Lower-layer errors translated into wire errors, in one place (httpx's
`map_httpcore_exceptions` is the model).

Rules kept here:
- `sqlite3.Error`, `OSError` and `subprocess` failures become `WireError`s chained with `from`,
  so the log keeps the cause and the wire gets a sentence: no trace, no raw `[Errno N]`;
- a permission error is `forbidden`, everything else the caller could not help is
  `unavailable`; a `WireError` passes through untouched;
- the sentence is `<what was being done>: <why>`.
"""

from __future__ import annotations

import errno
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from hive_wire.errors import Forbidden, Unavailable, WireError


def reason(err: BaseException) -> str:
    """Why, in words: `strerror` for an OSError, the message otherwise."""
    if isinstance(err, OSError):
        return err.strerror or type(err).__name__
    if isinstance(err, subprocess.CalledProcessError):
        return f"exit status {err.returncode}"
    return str(err) or type(err).__name__


def translate(err: BaseException, doing: str) -> WireError:
    if isinstance(err, WireError):
        return err
    if isinstance(err, PermissionError) or (
        isinstance(err, OSError) and err.errno in (errno.EACCES, errno.EPERM)
    ):
        out: WireError = Forbidden(f"{doing}: {reason(err)}")
    elif isinstance(err, sqlite3.Error):
        out = Unavailable(f"{doing}: {err}")
    else:
        out = Unavailable(f"{doing}: {reason(err)}")
    out.__cause__ = err
    return out


@contextmanager
def translated(doing: str, *, forbidden: bool = True) -> Iterator[None]:
    """Run the block; a lower-layer error leaves it as a wire error. With `forbidden=False` a
    permission error is `unavailable` too (the daemon's own files: not the caller's fault)."""
    try:
        yield
    except WireError:
        raise
    except (sqlite3.Error, OSError, subprocess.SubprocessError) as e:
        out = translate(e, doing)
        if not forbidden and isinstance(out, Forbidden):
            out = Unavailable(out.message)
        raise out from e
