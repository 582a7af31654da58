"""Agent names, the one rule every surface applies before a name touches a path or a command.

An agent name is 1 to 63 bytes of `[a-z0-9-]` (hyperhive's rule) that does not start with `-`
(it would read as an option), and is not one of the reserved principals.
"""

from __future__ import annotations

import re

from .errors import BadRequest

MAX_NAME = 63
RESERVED = frozenset({"manager", "operator", "system", "reminder", "self", "hive", "*"})
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\Z")


def check_agent_name(name: object, field: str = "name", max_len: int = MAX_NAME) -> str:
    """Return `name` if it is a valid agent name, else raise `BadRequest` saying why."""
    if not isinstance(name, str):
        raise BadRequest(f"{field}: expected a string")
    if name in RESERVED:
        raise BadRequest(f"{field}: {name!r} is reserved and cannot be an agent name")
    if not _NAME.match(name):
        raise BadRequest(
            f"{field}: {name!r} is not a valid agent name "
            f"(1 to {MAX_NAME} of a-z, 0-9 and '-', not starting with '-')"
        )
    if len(name) > max_len:
        raise BadRequest(f"{field}: {name!r} is longer than {max_len} characters for this backend")
    return name
