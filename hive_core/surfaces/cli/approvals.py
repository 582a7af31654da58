"""The operator's queues: approvals (`request-spawn`, `pending`, `diff`, `approve`, `deny`),
questions (`questions`, `answer`, `cancel-question`) and reminders (`reminders`,
`retry-reminder`).

Rules kept here:
- each command sends one verb of the table and prints one line (or a table; an empty one says
  so); `pending` also shows each pending config change's subject and diffstat (one `diff` each);
- what a resolution does (the approval's action, the asker being told) is the daemon's.
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
    verb_command,
)


def _questions_human(a: dict[str, Any]) -> None:
    rows = [
        [
            str(q["id"]),
            q["asker"],
            q["question"][:60],
            "/".join(q.get("options") or []),
            q.get("deadline") or "",
        ]
        for q in a["questions"]
    ]
    table(rows, ["ID", "ASKER", "QUESTION", "OPTIONS", "DEADLINE"], "no open questions")


def _reminders_human(a: dict[str, Any]) -> None:
    rows = [
        [
            str(r["id"]),
            r["agent"],
            r["status"],
            r["due_at"],
            str(r["attempts"]),
            r.get("last_error") or r["message"][:60],
        ]
        for r in a["reminders"]
    ]
    table(rows, ["ID", "AGENT", "STATUS", "DUE", "ATTEMPTS", "MESSAGE / ERROR"], "no reminders")


def register(main: click.Group) -> None:
    @verb_command(main, "request-spawn", "request_spawn", "approval {id} queued")
    @click.argument("name")
    @click.option("--description", default=None, help="Why (shown to the approver).")
    def request_spawn(name: str, description: str | None) -> dict[str, Any]:
        """Queue a spawn of NAME for approval."""
        return {"name": name, "description": description or None}

    @main.command()
    @click.option("--all", "show_all", is_flag=True, help="Include resolved approvals.")
    @socket_option
    @json_option
    def pending(show_all: bool, socket_path: str | None, as_json: bool) -> None:
        """List the approvals waiting for the operator."""
        path = socket_path or default_socket()

        def human(a: dict[str, Any]) -> None:
            shown = [r for r in a["approvals"] if show_all or r["status"] == "pending"]
            rows = [
                [
                    str(r["id"]),
                    r["kind"],
                    r["agent"],
                    r["status"],
                    r["requested_at"],
                    r.get("note") or r.get("description") or "",
                ]
                for r in shown
            ]
            table(
                rows,
                ["ID", "KIND", "AGENT", "STATUS", "REQUESTED", "NOTE"],
                "no approvals" if show_all else "no pending approvals",
            )
            for r in shown:  # a config change: its commit subject and diffstat
                if r["kind"] == "apply_commit" and r["status"] == "pending":
                    d = call_verb(path, "diff", id=r["id"])
                    click.echo(f"\n#{r['id']} {r['agent']}: {d['subject']}\n{d['stat']}")

        out(as_json, call_verb(path, "pending"), human)

    @verb_command(main, "diff", "diff", "{subject}\n\n{stat}\n\n{diff}")
    @click.argument("approval_id", type=int)
    def diff_(approval_id: int) -> dict[str, Any]:
        """Print an apply_commit approval's diff against the deployed config."""
        return {"id": approval_id}

    @verb_command(main, "approve", "approve", "approved {id}")
    @click.argument("approval_id", type=int)
    def approve(approval_id: int) -> dict[str, Any]:
        """Approve approval ID (runs its action now)."""
        return {"id": approval_id}

    @verb_command(main, "deny", "deny", "denied {id}")
    @click.argument("approval_id", type=int)
    @click.option("--note", default=None, help="The reason, told to the requester.")
    def deny(approval_id: int, note: str | None) -> dict[str, Any]:
        """Deny approval ID."""
        return {"id": approval_id, "note": note}

    @verb_command(main, "questions", "questions", _questions_human)
    def questions() -> None:
        """List the open questions addressed to the operator."""

    @verb_command(main, "answer", "answer", "answered {id}")
    @click.argument("question_id", type=int)
    @click.argument("text")
    def answer(question_id: int, text: str) -> dict[str, Any]:
        """Answer question ID with TEXT."""
        return {"id": question_id, "answer": text}

    @verb_command(main, "cancel-question", "cancel_question", "cancelled {id}")
    @click.argument("question_id", type=int)
    def cancel_question(question_id: int) -> dict[str, Any]:
        """Cancel question ID (the asker is told)."""
        return {"id": question_id}

    @verb_command(main, "reminders", "reminders", _reminders_human)
    def reminders() -> None:
        """List pending and parked reminders."""

    @verb_command(main, "retry-reminder", "retry_reminder", "retrying {id}")
    @click.argument("reminder_id", type=int)
    def retry_reminder(reminder_id: int) -> dict[str, Any]:
        """Put reminder ID back to pending, due now, with its attempts reset."""
        return {"id": reminder_id}
