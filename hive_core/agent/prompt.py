"""What a turn is woken with: the wake prompt, and which messages start no turn at all.

Rules kept here:
- the prompt says who sent what, marks a redelivered message with hyperhive's banner, counts the
  other unread messages and reminds that the `recv` tool drains more;
- a lifecycle kick from `system` (started, restarted, rebuilt) starts no turn: it is told in the
  next turn's prompt (a turn costs money).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

REDELIVERED = "[redelivered: this may already have been handled]"
KICK = re.compile(r"\[system\] [^\n]*: your harness may resume")
LIFECYCLE_EVENTS = frozenset({"started", "restarted", "rebuilt"})


def lifecycle_only(msg: dict[str, Any]) -> bool:
    if msg.get("from") != "system":
        return False
    body = str(msg.get("body", ""))
    if KICK.fullmatch(body):
        return True
    try:
        obj = json.loads(body)
    except ValueError:
        return False
    return isinstance(obj, dict) and obj.get("event") in LIFECYCLE_EVENTS


def wake_prompt(msgs: Sequence[dict[str, Any]], notes: Sequence[str], unread: int) -> str:
    out: list[str] = []
    if notes:
        out += ["Since your last turn:", *(f"- {n}" for n in notes), ""]
    out.append(f"You have {len(msgs)} new message(s) from the hive.")
    for m in msgs:
        reply = f" (in reply to {m['in_reply_to']})" if m.get("in_reply_to") else ""
        out += ["", f"--- message {m['id']} from: {m['from']}{reply}"]
        if m.get("redelivered"):
            out.append(REDELIVERED)
        out.append(str(m.get("body", "")))
    out.append("")
    if unread:
        out.append(f"{unread} other unread message(s) are waiting in your inbox.")
    out.append("The `recv` tool (mcp__hive__recv) drains more messages; answer with `send`.")
    return "\n".join(out)
