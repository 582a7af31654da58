"""`hive-core costs`: what each agent (and each thread) cost, and where its budget stands.

Rules kept here:
- one `costs` request; the table is the answer as it came (the daemon sums, this only prints);
- money with two decimals (four under a cent), tokens with thousands separators.
"""

from __future__ import annotations

from typing import Any

import click

from hive_core.surfaces.cli.common import (
    call_verb,
    default_socket,
    json_option,
    out,
    socket_option,
    table,
)


def _money(usd: float | None) -> str:
    if usd is None:
        return "-"
    return f"${usd:.2f}" if usd >= 0.01 or usd == 0 else f"${usd:.4f}"


def _budget(b: dict[str, Any] | None) -> str:
    if not b:
        return "-"
    parts = []
    if b.get("limit_usd") is not None:
        parts.append(f"{_money(b['spent_usd'])}/{_money(b['limit_usd'])}")
    if b.get("limit_tokens") is not None:
        parts.append(f"{b['spent_tokens']:,}/{b['limit_tokens']:,} tok")
    text = f"{' '.join(parts)} per {b['period']}"
    return f"{text} PAUSED" if b.get("paused") else text


def human(a: dict[str, Any]) -> None:
    rows = [
        [
            r["agent"],
            str(r["turns"]),
            f"{r['input_tokens']:,}",
            f"{r['output_tokens']:,}",
            f"{r['cache_read_tokens']:,}",
            f"{r['cache_creation_tokens']:,}",
            _money(r["cost_usd"]),
            _money(r["last_24h"]["cost_usd"]),
            _money(r["last_7d"]["cost_usd"]),
            _money(r["last_30d"]["cost_usd"]),
            _budget(r.get("budget")),
        ]
        for r in a["agents"]
    ]
    table(
        rows,
        [
            "AGENT",
            "TURNS",
            "INPUT",
            "OUTPUT",
            "CACHE READ",
            "CACHE WRITE",
            "COST",
            "24H",
            "7D",
            "30D",
            "BUDGET",
        ],
        "no agents",
    )
    if "threads" in a:
        click.echo("")
        trows = [
            [
                str(t["thread"]),
                ",".join(t["agents"]),
                str(t["turns"]),
                _money(t["cost_usd"]),
                " ".join(t["first_body"].split())[:60],
            ]
            for t in a["threads"]
        ]
        table(trows, ["THREAD", "AGENTS", "TURNS", "COST", "FIRST MESSAGE"], "no threads")


def register(main: click.Group) -> None:
    @main.command()
    @click.option("--agent", default=None, help="Only this agent.")
    @click.option(
        "--since",
        default=None,
        help="Sum turns since this RFC 3339 time (2026-09-07T00:00:00Z), not all kept.",
    )
    @click.option(
        "--by-thread",
        is_flag=True,
        help="Also list the threads (first message and its replies), costliest first.",
    )
    @socket_option
    @json_option
    def costs(
        agent: str | None,
        since: str | None,
        by_thread: bool,
        socket_path: str | None,
        as_json: bool,
    ) -> None:
        """What each agent cost, and where its budget stands.

        Turns, tokens and dollars: all kept (or since --since), the last 24 h, 7 d and 30 d.
        """
        answer = call_verb(
            socket_path or default_socket(),
            "costs",
            agent=agent,
            since=since,
            by_thread=by_thread or None,
        )
        out(as_json, answer, human)
