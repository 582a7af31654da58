"""The bundled example agent, `hive-core agent echo`: a real, minimal harness.

It calls `requeue_inflight` once (anything a previous run popped but never acked comes back),
then long-polls its inbox; each message from an agent, the manager or the operator is answered to
its sender as `echo: <body>`; the ids it handled are acked once the turn is done. Messages from
`system`, `reminder` or a `wake` label, and replies (messages with `in_reply_to`, so two echo
agents never ping-pong), are acknowledged without an answer.

While the daemon's `paused` marker is in its working directory (its state dir) it answers
nothing: it checks the marker before each `recv` and again before answering what a `recv`
brought, and while paused it looks at the marker every `PAUSE_CHECK` seconds (a file check, not
a request). Messages popped before the pause stay leased, unanswered, until `resume`.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from hive_wire.blocking import call_sync
from hive_wire.errors import WireError
from hive_wire.names import check_agent_name


def _answerable(msg: dict[str, Any]) -> bool:
    if msg.get("in_reply_to") is not None:
        return False
    if msg["from"] in ("manager", "operator"):
        return True
    try:
        check_agent_name(msg["from"])
    except WireError:
        return False
    return True


PAUSED_MARKER = "paused"  # written by the daemon (`hive-core pause`) in the agent's state dir
PAUSE_CHECK = 0.5


def wait_while_paused(marker: str = PAUSED_MARKER) -> None:
    while os.path.lexists(marker):
        time.sleep(PAUSE_CHECK)  # a modest poll of a local file: the harness is idle by design


def run(socket_path: str, wait: int = 30) -> None:
    call_sync(socket_path, {"cmd": "requeue_inflight"})
    while True:
        wait_while_paused()
        answer = call_sync(socket_path, {"cmd": "recv", "wait_seconds": wait, "max": 32})
        wait_while_paused()  # paused while parked in `recv`: what it brought waits too
        handled = []
        for msg in answer["messages"]:
            if _answerable(msg):
                try:
                    call_sync(
                        socket_path,
                        {
                            "cmd": "send",
                            "to": msg["from"],
                            "body": f"echo: {msg['body']}",
                            "in_reply_to": msg["id"],
                        },
                    )
                except WireError as e:
                    print(f"echo: cannot answer {msg['from']}: {e}", file=sys.stderr, flush=True)
            handled.append(msg["id"])
        if handled:
            call_sync(socket_path, {"cmd": "ack_turn", "ids": handled})
