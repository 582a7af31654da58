"""Vacuum of the per-agent SQLite files the agents' harnesses write in their state dirs:
`hyperhive-events.sqlite` (table `events`, column `ts`) and `hyperhive-turn-stats.sqlite`
(table `turn_stats`, column `started_at`). The files are the agents'; we only delete old rows.

Each file is opened on its own short connection, never followed through a symlink; a file that
fails (missing table, locked, corrupt) is logged and the sweep goes on.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

FILES = (
    ("hyperhive-events.sqlite", "events", "ts"),
    ("hyperhive-turn-stats.sqlite", "turn_stats", "started_at"),
)


def _sweep(path: Path, table: str, column: str, cutoff: float) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=2)
    try:
        # Timestamps may be seconds or milliseconds: compare in the file's own unit.
        cur = conn.execute(
            f"DELETE FROM {table} WHERE "
            f"(CASE WHEN {column} > 100000000000 THEN {column} / 1000.0 ELSE {column} END) < ?",
            (cutoff,),
        )
        conn.commit()
        return cur.rowcount
    finally:
        conn.close()


def vacuum_all(state_dirs: Iterable[Path], cutoffs: dict[str, float]) -> dict[str, int]:
    """Sweep every agent's files; `cutoffs` maps file name to the oldest time kept."""
    removed: dict[str, int] = {}
    for state in state_dirs:
        for fname, table, column in FILES:
            path = state / fname
            try:
                if not stat.S_ISREG(os.lstat(path).st_mode):
                    log.warning("vacuum skipped (not a regular file) path=%s", path)
                    continue
            except FileNotFoundError:
                continue
            try:
                removed[str(path)] = _sweep(path, table, column, cutoffs[fname])
            except (sqlite3.Error, OSError) as e:
                log.warning("vacuum failed path=%s error=%s", path, e)
    return removed
