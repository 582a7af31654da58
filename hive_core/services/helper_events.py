"""Helper events: what the daemon tells the manager (and agents) as broker messages from
`system`, each body a JSON object with an `event` field (queues.md lists them)."""

from __future__ import annotations

import json
from typing import Any

SYSTEM = "system"


def body(event: str, **fields: Any) -> str:
    return json.dumps(
        {"event": event, **{k: v for k, v in fields.items() if v is not None}},
        ensure_ascii=False,
        separators=(",", ":"),
    )
