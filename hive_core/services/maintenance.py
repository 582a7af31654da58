"""Maintenance: lease expiry, the hourly vacuum, and systemd's STATUS line, in one task.

Rules kept here:
- expired leases are swept at least every minute (a quarter of the lease timeout, at most);
- the vacuum deletes only what is past its retention; one failing part is logged and the rest
  goes on; agents' own SQLite files are swept off the trio thread;
- a failing sweep is logged and never ends the task.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from hive_core import sdnotify
from hive_core.clock import now, offload
from hive_core.store import agent_files

if TYPE_CHECKING:
    from hive_core.app import Hive

log = logging.getLogger(__name__)

VACUUM_EVERY = 3600.0
LEASE_SWEEP_MAX = 60.0


async def run(hive: Hive) -> None:
    """Lease expiry (every minute at most), vacuum (hourly), and systemd's STATUS line."""
    sweep = min(LEASE_SWEEP_MAX, max(hive.config.lease_timeout / 4, 1.0))
    next_vacuum = trio.current_time()
    while True:
        try:
            requeued = await hive.broker.expire_leases()
            if requeued:
                log.info("leases expired requeued=%d", requeued)
            if trio.current_time() >= next_vacuum:
                await vacuum(hive)
                next_vacuum = trio.current_time() + VACUUM_EVERY
            running = len(await hive.backend.running())
            pending = await hive.broker.pending_total()
            sdnotify.notify(f"STATUS={running} agents running, {pending} messages pending")
        except Exception:
            log.exception("maintenance sweep failed")
        await trio.sleep(sweep)


async def vacuum(hive: Hive) -> None:
    """Delete what is past its retention; one failing part is logged and the rest goes on."""
    cfg = hive.config
    parts = [
        ("messages", hive.broker.vacuum, cfg.retention_days),
        ("approvals", hive.approvals.vacuum, cfg.resolved_retention_days),
        ("questions", hive.questions.vacuum, cfg.resolved_retention_days),
        ("reminders", hive.reminders.vacuum, cfg.retention_days),
        ("turns", hive.activity.vacuum, cfg.turn_stats_retention_days),
        ("events", hive.events.vacuum, cfg.events_retention_days),
    ]
    for name, sweep, days in parts:
        try:
            removed = await sweep(days * 86400)
            log.info("vacuum table=%s removed=%d", name, removed)
        except Exception:
            log.exception("vacuum failed table=%s", name)
    at = now()
    cutoffs = {
        "hyperhive-events.sqlite": at - cfg.events_retention_days * 86400,
        "hyperhive-turn-stats.sqlite": at - cfg.turn_stats_retention_days * 86400,
    }
    states = [hive.paths.agent_state(n) for n in sorted(hive.agents.names)]
    swept = await offload(agent_files.vacuum_all, states, cutoffs)
    for path, count in swept.items():
        log.info("vacuum file=%s removed=%d", path, count)
