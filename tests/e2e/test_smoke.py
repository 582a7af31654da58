from __future__ import annotations

from hive_core.app import Hive
from tests.helpers import agent_sock, call, spawn_idle


async def test_send_recv_ack_through_sockets(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice")
    sent = await call(host, {"cmd": "send", "to": "alice", "body": "hi"})
    assert sent == {"version": 1, "ok": True, "id": sent["id"]}
    got = await call(agent_sock(hive, "alice"), {"cmd": "recv", "max": 5})
    assert [m["body"] for m in got["messages"]] == ["hi"]
    assert list(got["messages"][0]) == ["id", "from", "body", "sent_at", "redelivered"]
    acked = await call(agent_sock(hive, "alice"), {"cmd": "ack_turn"})
    assert acked == {"version": 1, "ok": True, "acked": 1}
