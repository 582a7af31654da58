"""What a verb's service function may return besides a plain answer: a `Feed` (the connection
becomes a stream) or an `Undoable` (what to do if the answer cannot be delivered). Every surface
knows how to carry them; no surface adds rules of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs

# (hive, caller, request) -> answer | Feed | Undoable
Handler = Callable[[Any, str, Any], Awaitable[Any]]


@attrs.frozen
class Feed:
    """A verb's answer that turns the connection into a stream: `ack`, then every item."""

    ack: Any
    items: AsyncIterator[Any]


@attrs.frozen
class Undoable:
    """A verb's answer with what to do if it cannot be written to the client (it hung up), and
    what to do once it has been."""

    result: Any
    undo: Callable[[], Awaitable[None]]
    done: Callable[[], Awaitable[None]] | None = None
