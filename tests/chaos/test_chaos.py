"""kill -9 at random moments under concurrent send/recv/ack load, 200 times (quality.md
"Crashes and durability"); and the classifier, on histories with each kind of fault planted.

`HIVE_CHAOS_KILLS` sets the number of kills (default 200, about 50 s here); `HIVE_CHAOS_SEED`
replays the random choices (progress before each kill, the clients' choices); thread timing
still varies from run to run. `bench/chaos.py --kills 2000` is the long run.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

from .harness import PROBLEMS, Client, DbRow, classify, run_chaos

KILLS = int(os.environ.get("HIVE_CHAOS_KILLS", "200"))
SEED = int(os.environ.get("HIVE_CHAOS_SEED", str(random.randrange(1 << 30))))


def test_kill9_200_times_under_load_loses_nothing(dirs: Path) -> None:
    summary = run_chaos(dirs, kills=KILLS, seed=SEED)
    report = f"(HIVE_CHAOS_SEED={SEED} to replay)\n{summary.render()}"
    assert summary.kills == KILLS, report
    assert summary.clean, report
    # The kills hit the load: requests were cut short, sends were lost in flight, batches came
    # back flagged; and the load was real.
    assert summary.interrupted >= KILLS, report
    assert summary.unknown_sends > 0 and summary.redeliveries > 0, report
    assert summary.messages >= 5 * KILLS, report


# --- the classifier --------------------------------------------------------------------------
def _row(mid: int, to: str, sender: str, body: str, acked: bool = True) -> DbRow:
    return DbRow(mid, to, sender, body, time.time() if acked else None, None)


def _client(label: str, events: list[tuple[object, ...]], receives: bool = True) -> Client:
    return Client(
        label,
        label if receives else "operator",
        "/nonexistent",
        [],
        receives,
        random.Random(0),
        events,
    )


def test_a_clean_history_is_clean() -> None:
    sender = _client("a0", [("sent", 1, "a1", 0), ("sent", 2, "a1", 1), ("sent?", "a1", 2)])
    receiver = _client(
        "a1",
        [
            ("requeued", 0),
            ("got", 1, "a0", "a0:0:", False),
            ("requeued", 1),  # the harness died mid-turn
            ("got", 1, "a0", "a0:0:", True),
            ("got", 2, "a0", "a0:1:xx", False),
            ("acked", (1, 2)),
            ("got", 3, "a0", "a0:2:", True),  # committed, its answer lost; its pop's answer too
            ("acked", (3,)),
        ],
    )
    rows = {
        1: _row(1, "a1", "a0", "a0:0:"),
        2: _row(2, "a1", "a0", "a0:1:xx"),
        3: _row(3, "a1", "a0", "a0:2:"),
        4: _row(4, "manager", "system", '{"event":"spawned"}', acked=False),
    }
    verdict = classify([sender, receiver], rows)
    assert verdict.clean, verdict


def test_each_fault_is_counted_once() -> None:
    sender = _client(
        "a0",
        [
            ("sent", 1, "a1", 0),
            ("sent", 2, "a1", 1),
            ("sent", 3, "a1", 2),
            ("sent", 4, "a1", 3),
            ("sent", 5, "a1", 4),
            ("error", "send", "unavailable", "database error"),
        ],
    )
    op = _client("op", [("sent", 6, "a1", 0)], receives=False)
    receiver = _client(
        "a1",
        [
            ("got", 2, "a0", "a0:1:", False),
            ("got", 1, "a0", "a0:0:", False),  # out of order: a0:0 after a0:1
            ("acked", (1, 2)),
            ("got", 2, "a0", "a0:1:", True),  # after its ack
            ("got", 3, "a0", "a0:2:", False),
            ("got", 3, "a0", "a0:2:", False),  # a repeat without the flag
            ("got", 4, "a0", "a0:3:tampered", False),  # not what the row holds
            ("mismatch", (3, 4), {"acked": 1, "ignored": 1}),
            # 5 (a0:4) and 6 (op:0) never delivered; 7 committed with its answer lost, never delivered
        ],
    )
    rows = {i: _row(i, "a1", "a0", f"a0:{i - 1}:") for i in range(1, 6)}
    rows[6] = _row(6, "a1", "operator", "op:0:", acked=False)
    rows[7] = _row(7, "a1", "a0", "a0:5:")
    verdict = classify([sender, op, receiver], rows)
    assert verdict.counts == {
        **dict.fromkeys(PROBLEMS, 0),
        "lost": 3,
        "after_ack": 1,
        "unflagged_repeat": 1,
        "out_of_order": 1,
        "corrupt": 1,
        "unacked_at_end": 1,
        "ack_mismatch": 1,
        "error_answer": 1,
    }, verdict.examples
