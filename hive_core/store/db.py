"""The database thread and group commit.

Rules kept here:
- one SQLite connection, opened, used and closed by one dedicated thread;
- trio tasks submit jobs (`await store.run(fn, *args)`, where `fn(conn, *args)` runs in that
  thread) and get the result only after the transaction holding the job has committed, so `ok`
  means on disk (WAL, `synchronous=FULL`);
- every job queued while a commit runs is committed with the next batch: one fsync for many jobs;
- when the loop has nothing else runnable and nothing is queued, a `light` job runs at once in
  the trio thread (under the same lock as a batch): one request alone pays no thread hops; any
  other job (a scan, a vacuum, the event history's batch) never runs there: the loop must not
  stop for it;
- otherwise jobs gather in the trio thread while the batch before them commits (one batch in
  the store thread's hands at a time, like a server that blocks on its commit); a batch of
  `light` jobs only (the broker's short statements) runs its SQL in the trio thread and hands
  the store thread just the COMMIT (one hand-over of the interpreter lock per batch instead of
  one per statement); a batch with any other job runs whole in the store thread;
- a job that raises is rolled back alone and its caller gets the exception: a batch runs without
  savepoints first and, only if a job raised, again with a savepoint per job; a failed commit
  fails every job of the batch with `Unavailable`; jobs touch nothing but the database;
- `sqlite3` errors never leave the store raw: they become `Unavailable`, chained;
- `max_bytes` (`database_max_bytes`) is a soft cap: inserts that call `check_room` (every
  message) are refused at it, while SQLite's hard `max_page_count` sits a few pages higher so
  that draining (pops, acks, deletes) never fails for want of a page.
"""

from __future__ import annotations

import functools
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import trio

from hive_core.errors import translate
from hive_wire.errors import Unavailable, WireError

from . import schema

F = TypeVar("F", bound=Callable[..., Any])


class Connection(sqlite3.Connection):
    """The store's connection: it knows its soft cap (`database_max_bytes`, in pages)."""

    soft_cap_pages = 0  # 0: no cap


def check_room(conn: sqlite3.Connection) -> None:
    """Refuse an insert once the database holds its soft cap of pages in use (free pages are
    reused first, so deleting makes room again)."""
    cap = getattr(conn, "soft_cap_pages", 0)
    if not cap:
        return
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    (free,) = conn.execute("PRAGMA freelist_count").fetchone()
    if pages - free >= cap:
        raise Unavailable(
            "the database is full (database_max_bytes reached): new messages are "
            "refused until inboxes drain or the cap is raised"
        )


log = logging.getLogger(__name__)

MAX_BATCH = 1024


def light(fn: F) -> F:
    """Mark a store job as light: a few indexed statements, microseconds, never a scan, so a
    batch of them may run its SQL in the trio thread (only the COMMIT goes to the store
    thread)."""
    fn.store_light = True  # type: ignore[attr-defined]
    return fn


class _Job:
    __slots__ = ("fn", "args", "task", "result", "error")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.task: trio.lowlevel.Task | None = None  # waiting for the commit (threaded mode)
        self.result: Any = None
        self.error: BaseException | None = None


_STOP = object()
_COMMIT = object()  # (this, batch) on the queue: the batch's SQL ran; commit it
P = ParamSpec("P")
T = TypeVar("T")


class Store:
    def __init__(self, path: Path, *, max_bytes: int = 0, inline: bool = False) -> None:
        self.inline = inline
        self.path = path
        self.max_bytes = max_bytes  # 0: no cap
        self.transactions = 0
        self.operations = 0
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._inline: sqlite3.Connection | None = None
        self._conn: sqlite3.Connection | None = None
        self._busy = threading.Lock()  # held while a batch runs, in either thread
        self._pending: list[_Job] = []  # jobs waiting for the batch in flight to commit
        self._in_flight = False  # a batch is in the store thread's hands
        self._work = trio.lowlevel.ParkingLot()  # the committer waits here for jobs
        self._committer: trio.CancelScope | None = None
        self._settled = trio.lowlevel.ParkingLot()  # unparked after every batch

    # --- lifecycle ------------------------------------------------------------------------
    async def open(self) -> None:
        """Start the thread, open and migrate the database; raise if that fails."""
        self._token = trio.lowlevel.current_trio_token()
        # Inline mode (tests under a mock clock, where a task awaiting another thread looks idle
        # and an autojumping clock would jump past deadlines while a job runs): jobs run in the
        # trio thread, one transaction each, through the same `_run_batch`.
        if self.inline:
            self._inline = self._connect()
            return
        opened = trio.Event()
        failure: list[BaseException] = []

        def report(err: BaseException | None) -> None:
            if err is not None:
                failure.append(err)
            opened.set()

        self._thread = threading.Thread(
            target=self._main, args=(report,), name="hive-store", daemon=True
        )
        self._thread.start()
        await opened.wait()
        if failure:
            await trio.to_thread.run_sync(self._thread.join)
            raise failure[0]
        self._committer = trio.CancelScope()
        trio.lowlevel.spawn_system_task(
            self._commit_loop, self._committer, name="hive-store-committer"
        )

    async def close(self) -> None:
        if self._inline is not None:
            self._inline.close()
            self._inline = None
            return
        if self._thread is None:
            return
        if self._committer is not None:
            with trio.CancelScope(shield=True):
                while self._pending or self._in_flight:  # what was submitted commits first
                    await self._settled.park()
            self._committer.cancel()
            self._committer = None
        self._queue.put(_STOP)
        thread, self._thread = self._thread, None
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(thread.join)

    # --- the API --------------------------------------------------------------------------
    async def run(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `fn(conn, *args)` in the store thread, inside a transaction; its result once
        committed. Once the job is submitted the caller waits for the commit whatever happens
        (a cancel arrives after it): a committed change is never lost to its caller. (Inline
        mode may be cancelled before the job runs, which changes nothing.)"""
        job = _Job(functools.partial(fn, **kwargs) if kwargs else fn, args)
        if self._inline is not None:
            await trio.lowlevel.checkpoint()
            self._run_batch(self._inline, [job])
        elif self._thread is None or self._conn is None:
            raise Unavailable("the database is closed")
        elif (
            getattr(fn, "store_light", False)
            and not self._in_flight
            and self._idle()
            and self._busy.acquire(blocking=False)
        ):
            # A light job, nothing else to do and nothing queued: the two thread hops would only
            # add latency, so commit here (the loop has nobody to serve meanwhile). A heavier
            # job (a scan, a vacuum, the event history's batch) always goes to the store thread:
            # the loop must not stop for it.
            try:
                self._run_batch(self._conn, [job])
            finally:
                self._busy.release()
            await trio.lowlevel.cancel_shielded_checkpoint()
        else:
            job.task = trio.lowlevel.current_task()
            self._pending.append(job)
            if self._work:
                self._work.unpark_all()
            # Once handed over it commits, and its caller must learn the result: an
            # uncancellable wait (cheaper than a shielded cancel scope and an event).
            await trio.lowlevel.wait_task_rescheduled(_no_abort)
        if job.error is not None:
            raise job.error
        result: T = job.result
        return result

    def _idle(self) -> bool:
        return not self._pending and _runnable() == 0

    async def _commit_loop(self, scope: trio.CancelScope) -> None:
        """The trio side of group commit: hand the store thread one batch at a time, made of
        every job submitted while the batch before it committed."""
        with scope:
            while True:
                while not self._pending:
                    await self._work.park()
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                me = trio.lowlevel.current_task()
                self._in_flight = True
                try:
                    if all(getattr(job.fn, "store_light", False) for job in batch):
                        assert self._conn is not None
                        with self._busy:  # the store thread is idle: no batch in its hands
                            self._run_batch(self._conn, batch, commit=False)
                        self._queue.put((_COMMIT, batch, me))
                    else:
                        self._queue.put((None, batch, me))
                    await trio.lowlevel.wait_task_rescheduled(_no_abort)
                finally:
                    self._in_flight = False
                    self._settled.unpark_all()

    # --- the thread -----------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, factory=Connection
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        if self.max_bytes > 0:
            # A soft cap: inserts that check the room (`check_room`) are refused at the cap,
            # while the file may grow a few pages past it, so that pops, acks and deletes (which
            # also need pages: index entries, page splits) still work and inboxes drain.
            (page_size,) = conn.execute("PRAGMA page_size").fetchone()
            cap = max(1, int(self.max_bytes) // page_size)
            conn.soft_cap_pages = cap
            conn.execute(f"PRAGMA max_page_count={cap + max(32, cap // 20)}")
        schema.migrate(conn)
        return conn

    def _main(self, report: Callable[[BaseException | None], None]) -> None:
        assert self._token is not None
        token = self._token
        try:
            conn = self._connect()
        except BaseException as e:  # noqa: BLE001 - reported to the opener
            err = Unavailable(f"cannot open database {self.path}: {e}")
            err.__cause__ = e
            token.run_sync_soon(report, err)
            return
        self._conn = conn
        token.run_sync_soon(report, None)
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    break
                kind, batch, committer = item
                with self._busy:
                    if kind is _COMMIT:
                        _commit(conn, batch)
                    else:
                        self._run_batch(conn, batch)
                try:
                    token.run_sync_soon(_finish, batch, committer)
                except trio.RunFinishedError:
                    break
        finally:
            with self._busy:
                self._conn = None
                conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job], commit: bool = True) -> None:
        """Run the batch in one transaction; committed, or (`commit` False) left open for
        `_commit` unless nothing is left to commit (every job failed)."""
        self.transactions += 1
        self.operations += len(batch)
        if len(batch) > 1 and self._run_plain(conn, batch, commit):
            return
        while batch:
            batch = self._run_savepoints(conn, batch, commit)

    @staticmethod
    def _run_savepoints(
        conn: sqlite3.Connection, batch: list[_Job], commit: bool = True
    ) -> list[_Job]:
        """Run the batch with a savepoint per job, so a job that raises is rolled back alone.
        If SQLite rolled the whole transaction back itself (a full database), that job has
        failed and the others have to run again: they are returned."""
        several = len(batch) > 1
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in batch:
                if several:
                    conn.execute("SAVEPOINT job")
                try:
                    job.result = job.fn(conn, *job.args)
                except BaseException as e:  # noqa: BLE001 - handed to the caller
                    job.error = _translate(e)
                    if not conn.in_transaction:  # SQLite rolled everything back itself
                        rest = [j for j in batch if j is not job]
                        for j in rest:
                            j.result = j.error = None
                        return rest
                    conn.execute("ROLLBACK TO job" if several else "ROLLBACK")
                    if not several:
                        return []
                if several:
                    conn.execute("RELEASE job")
            if commit:
                conn.execute("COMMIT")
        except BaseException as e:  # noqa: BLE001 - every job of the batch learns of it
            _abort(conn, batch, e)
        return []

    @staticmethod
    def _run_plain(conn: sqlite3.Connection, batch: list[_Job], commit: bool = True) -> bool:
        """The common case: every job of the batch succeeds, so no savepoints are needed. If one
        raises, everything is rolled back and False says to run the batch again with a
        savepoint per job (jobs touch nothing but the database, so running again is safe)."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in batch:
                job.result = job.fn(conn, *job.args)
        except BaseException:  # noqa: BLE001 - the slow path sorts out whose it was
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for job in batch:
                job.result = None
            return False
        if commit:
            _commit(conn, batch)
        return True


def _commit(conn: sqlite3.Connection, batch: list[_Job]) -> None:
    """Commit the open transaction of `batch` (if a job is left to commit)."""
    if not conn.in_transaction:
        return
    try:
        conn.execute("COMMIT")
    except BaseException as e:  # noqa: BLE001 - every job of the batch learns of it
        _abort(conn, batch, e)


def _abort(conn: sqlite3.Connection, batch: list[_Job], err: BaseException) -> None:
    """The transaction failed as a whole: roll back what SQLite has not, fail every job."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.exception("rollback failed")
    _fail_all(batch, err)


def _translate(err: BaseException) -> BaseException:
    if isinstance(err, sqlite3.Error):
        return translate(err, "database error")
    return err


def _fail_all(batch: list[_Job], err: BaseException) -> None:
    log.error("transaction failed, %d job(s) rolled back: %s", len(batch), err)
    for job in batch:
        job.result = None
        if job.error is None or not isinstance(job.error, WireError):
            job.error = translate(err, "database error")


def _finish(batch: list[_Job], committer: trio.lowlevel.Task) -> None:
    for job in batch:
        if job.task is not None:
            trio.lowlevel.reschedule(job.task)
    trio.lowlevel.reschedule(committer)


_RUN_CONTEXT: Any = getattr(getattr(trio, "_core", None), "_run", None)
_RUN_CONTEXT = getattr(_RUN_CONTEXT, "GLOBAL_RUN_CONTEXT", None)  # trio's private (`_runnable`)


def _runnable() -> int:
    """How many tasks are ready to run: `current_statistics().tasks_runnable` without the rest of
    the statistics, which walk every registered file descriptor (hundreds with many agents: tens
    of µs a call, on every request that finds the loop idle). trio's own run queue when it is
    where trio 0.25-0.35 keeps it; the public call otherwise."""
    runner = getattr(_RUN_CONTEXT, "runner", None)
    runq = getattr(runner, "runq", None)
    if runq is None:
        return trio.lowlevel.current_statistics().tasks_runnable
    return len(runq)


def _no_abort(_: Any) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.FAILED
