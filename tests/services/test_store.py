"""The store: migrations, group commit, per-job rollback, durability (checked by reopening)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import trio

from hive_core.store import schema
from hive_core.store.db import Store, light
from hive_wire.errors import NotFound, Unavailable


def test_migrations_from_empty_and_idempotent(dirs: Path) -> None:
    conn = sqlite3.connect(dirs / "m.sqlite", isolation_level=None)
    assert schema.migrate(conn) == 0
    assert schema.version(conn) == schema.LATEST
    for migration in schema.MIGRATIONS:  # each one again on a migrated database: no change
        before = conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
        conn.execute("BEGIN")
        migration(conn)
        conn.execute("COMMIT")
        assert conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == before
    assert schema.migrate(conn) == schema.LATEST  # nothing left to do


def test_migrate_step_by_step(dirs: Path) -> None:
    conn = sqlite3.connect(dirs / "m.sqlite", isolation_level=None)
    for target in range(1, schema.LATEST + 1):
        schema.migrate(conn, target)
        assert schema.version(conn) == target


def test_newer_schema_is_refused(dirs: Path) -> None:
    conn = sqlite3.connect(dirs / "m.sqlite", isolation_level=None)
    conn.execute(f"PRAGMA user_version = {schema.LATEST + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        schema.migrate(conn)


def _insert(conn: sqlite3.Connection, value: str) -> int:
    return int(
        conn.execute(
            "INSERT INTO messages (recipient, sender, body, sent_at) VALUES ('a', 'b', ?, 0)",
            (value,),
        ).lastrowid
        or 0
    )


def _insert_then_fail(conn: sqlite3.Connection) -> None:
    _insert(conn, "rolled back")
    raise NotFound("nope")


async def test_group_commit_and_job_isolation(dirs: Path) -> None:
    store = Store(dirs / "g.sqlite")
    await store.open()
    try:
        before = store.transactions
        results: dict[int, object] = {}

        async def one(i: int) -> None:
            try:
                if i == 7:
                    await store.run(_insert_then_fail)
                else:
                    results[i] = await store.run(_insert, f"m{i}")
            except NotFound as e:
                results[i] = e

        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(one, i)
        assert isinstance(results[7], NotFound)
        assert len(results) == 50
        assert store.transactions - before < 50  # many jobs shared a commit
    finally:
        await store.close()
    # Durability, checked by reopening with a fresh connection.
    fresh = sqlite3.connect(dirs / "g.sqlite")
    bodies = {r[0] for r in fresh.execute("SELECT body FROM messages")}
    assert bodies == {f"m{i}" for i in range(50) if i != 7}


async def test_a_job_that_fills_the_database_fails_alone(dirs: Path) -> None:
    """SQLite rolls a whole transaction back when the database is full: the job that filled it
    fails, the small jobs batched with it run again and commit."""
    path = dirs / "full.sqlite"
    sized = Store(path)
    await sized.open()
    await sized.close()
    pages = sqlite3.connect(path).execute("PRAGMA page_count").fetchone()[0]
    store = Store(path, max_bytes=(pages + 8) * 4096)  # room for small rows, not 200 kB
    await store.open()
    try:
        results: dict[int, object] = {}

        async def one(i: int) -> None:
            try:
                results[i] = await store.run(_insert, "x" * 200_000 if i == 7 else f"m{i}")
            except Unavailable as e:
                results[i] = e

        before = store.transactions
        async with trio.open_nursery() as nursery:
            for i in range(30):
                nursery.start_soon(one, i)
        assert store.transactions - before < 30  # batched
        assert isinstance(results[7], Unavailable) and "full" in str(results[7])
        assert all(isinstance(results[i], int) for i in range(30) if i != 7), results
    finally:
        await store.close()
    fresh = sqlite3.connect(path)
    assert {r[0] for r in fresh.execute("SELECT body FROM messages")} == {
        f"m{i}" for i in range(30) if i != 7
    }


async def test_run_after_close_is_unavailable(dirs: Path) -> None:
    store = Store(dirs / "c.sqlite")
    await store.open()
    await store.close()
    with pytest.raises(Unavailable):
        await store.run(_insert, "late")


async def test_full_disk_answers_unavailable_and_keeps_data(dirs: Path) -> None:
    store = Store(dirs / "f.sqlite", max_bytes=40 * 4096)  # 40 pages
    await store.open()
    try:
        kept = await store.run(_insert, "small")
        with pytest.raises(Unavailable):
            for _ in range(100):
                await store.run(_insert, "x" * 100_000)
        assert kept > 0
    finally:
        await store.close()
    fresh = sqlite3.connect(dirs / "f.sqlite")
    assert fresh.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert fresh.execute("SELECT body FROM messages WHERE id = ?", (kept,)).fetchone() == ("small",)


def _thread_name(conn: sqlite3.Connection) -> str:
    conn.execute("SELECT count(*) FROM messages").fetchone()
    return threading.current_thread().name


@light
def _thread_name_light(conn: sqlite3.Connection) -> str:
    return _thread_name(conn)


async def test_only_light_jobs_run_in_the_trio_thread_when_it_is_idle(dirs: Path) -> None:
    """An idle loop commits a light job itself (no thread hops); anything else (a scan, a
    vacuum) goes to the store thread even then, so the loop never stops for it."""
    store = Store(dirs / "t.sqlite")
    await store.open()
    try:
        here = threading.current_thread().name
        for _ in range(3):
            assert await store.run(_thread_name_light) == here
            assert await store.run(_thread_name) == "hive-store"
    finally:
        await store.close()
