"""One function per verb of the table: (hive, caller, request) -> one service call -> the
answer shape. Every surface (sockets, HTTP, CLI through the host socket) calls these.

Rules kept here:
- no logic beyond choosing the caller and converting rows to answer shapes: rules about targets,
  ownership and "not on yourself" live in the services;
- `HANDLERS` names a function for every verb of `hive_wire.verbs.VERBS` (checked at import by
  the sockets surface); which socket serves a verb is the table's business, not this module's.
"""

from __future__ import annotations

from hive_core.services.answers import Handler
from hive_core.services.api import agents, messages, queues

# Every verb of the table, by name (hive_wire.verbs.VERBS says which sockets serve it).
HANDLERS: dict[str, Handler] = {**messages.HANDLERS, **agents.HANDLERS, **queues.HANDLERS}
