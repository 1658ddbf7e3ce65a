"""A MariaDB/MySQL database's tables copied into another database over several connections
at once, every connection reading the same instant of the source.

mydumper's way, kept inside the server: one connection holds ``LOCK TABLES … READ`` on
every table copied for as long as the copy runs, so no write to them commits meanwhile (a
transaction that wrote one before holds a metadata lock the LOCK waits for). Under it, each
worker fills whole tables with ``INSERT … SELECT`` at READ COMMITTED: a consistent read
that takes no row locks (at REPEATABLE READ InnoDB reads the source of an INSERT … SELECT
with shared next-key locks, which cost time and memory and, across workers, would be no
snapshot at all). Foreign key checks are off (tables fill in any order); unique checks
stay on: with both off MariaDB 10.11 fills an empty table by its bulk path, which sorts
what an INSERT … SELECT in key order already gives and took twice as long here.

The rows copied are those of one instant, as strong as the one locking transaction the
backend used before, which held the tables it had read until it committed.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ACCESS_DENIED",
    "Job",
    "copy_in_one_transaction",
    "copy_tables",
    "lock_for_reading",
    "quote",
    "release",
    "worker_count",
]

# When the server does not say how many cores it has (MySQL has no thread_pool_size).
DEFAULT_WORKERS = 4
MAX_WORKERS = 8
# Below this many bytes (as the statistics say) one worker copies everything.
PARALLEL_FROM_BYTES = 32 * 10**6
# LOCK TABLES chosen as a deadlock's victim is tried again this many times in all.
LOCK_ATTEMPTS = 5
_DEADLOCK = 1213
# The server's answers to a user without the LOCK TABLES privilege.
ACCESS_DENIED = frozenset({1044, 1142, 1227})
# How often a failed copy ends the statements still running, until every worker stopped.
POLL_SECONDS = 0.1


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


@dataclass(frozen=True)
class Job:
    """One table to fill: its name in both databases and the columns that hold data."""

    table: str
    columns: tuple[str, ...]

    def statement(self, source: str, target: str) -> str:
        columns = ", ".join(quote(column) for column in self.columns)
        return (
            f"INSERT INTO {quote(target)}.{quote(self.table)} ({columns}) "
            f"SELECT {columns} FROM {quote(source)}.{quote(self.table)}"
        )


def worker_count(cur: Any, sizes: Sequence[int]) -> int:
    """One worker per core of the server (MariaDB's ``thread_pool_size`` defaults to their
    number), no more than there are tables; one for a small database, where each further
    connection costs more than it saves."""
    import pymysql

    if sum(sizes) < PARALLEL_FROM_BYTES:
        return 1
    try:
        cur.execute("SELECT @@thread_pool_size")
        row = cur.fetchone()
        cores = int(row[0]) if row and row[0] else DEFAULT_WORKERS
    except pymysql.err.MySQLError:
        cores = DEFAULT_WORKERS
    return max(1, min(len(sizes), cores, MAX_WORKERS))


def lock_for_reading(
    connect: Callable[[], Any], database: str, tables: Sequence[str], *, wait_seconds: int
) -> Any:
    """A connection of its own holding ``tables`` of ``database`` with ``LOCK TABLES …
    READ``: no write to them commits until ``release``; readers go on. Waits
    ``wait_seconds`` for the transactions that wrote them before, then raises the server's
    lock wait timeout. None when there is nothing to lock."""
    import pymysql

    if not tables:
        return None
    conn = connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"SET SESSION lock_wait_timeout = {int(wait_seconds)}")
            statement = "LOCK TABLES " + ", ".join(
                f"{quote(database)}.{quote(table)} READ" for table in tables
            )
            for attempt in range(LOCK_ATTEMPTS):
                try:
                    cur.execute(statement)
                    break
                except pymysql.err.OperationalError as err:
                    # The tables are locked one by one: a transaction that wrote one and
                    # then wants another already locked makes a deadlock, and the server
                    # may pick this side. The writer goes on and commits; so can we.
                    if err.args[0] != _DEADLOCK or attempt == LOCK_ATTEMPTS - 1:
                        raise
    except BaseException:
        conn.close()
        raise
    return conn


def release(holder: Any) -> None:
    """End ``lock_for_reading``'s locks before returning (a session closed goes on holding
    them until the server has seen it go), then its session."""
    if holder is None:
        return
    with contextlib.suppress(Exception), holder.cursor() as cur:
        cur.execute("UNLOCK TABLES")
    with contextlib.suppress(Exception):
        holder.close()


class _Workers:
    """Threads, each connecting on its own, taking the next table until none is left or one
    of them failed."""

    def __init__(
        self, connect: Callable[[], Any], source: str, target: str, jobs: Sequence[Job]
    ) -> None:
        self.connect = connect
        self.source, self.target = source, target
        self.pending = list(jobs)
        self.conns: list[Any] = []
        self.failures: list[BaseException] = []
        self.failed = threading.Event()
        self.ended: queue.SimpleQueue[None] = queue.SimpleQueue()  # one put per worker
        self._lock = threading.Lock()

    def take(self) -> Job | None:
        with self._lock:
            if self.failed.is_set() or not self.pending:
                return None
            return self.pending.pop(0)

    def run(self) -> None:
        try:
            conn = self.connect()  # in the thread: the workers' handshakes overlap
            with self._lock:
                self.conns.append(conn)
            with conn.cursor() as cur:
                cur.execute(
                    "SET SESSION FOREIGN_KEY_CHECKS = 0, "
                    # Rows whose AUTO_INCREMENT column holds 0 are copied as 0, as
                    # mysqldump does.
                    "sql_mode = 'NO_AUTO_VALUE_ON_ZERO', "
                    # TIMESTAMPs read and written in UTC: no hour the clocks go back is
                    # ambiguous (mysqldump's reason too).
                    "time_zone = '+00:00'"
                )
                cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                while (job := self.take()) is not None:
                    cur.execute("START TRANSACTION")
                    cur.execute(job.statement(self.source, self.target))
                    cur.execute("COMMIT")
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            with self._lock:
                self.failures.append(err)
            self.failed.set()
        finally:
            self.ended.put(None)

    def stop(self, threads: list[threading.Thread]) -> None:
        """End the statements the workers run (a user may end its own sessions' queries)
        until every thread has seen that the copy failed and stopped."""
        import pymysql

        self.failed.set()
        threads = [thread for thread in threads if thread.ident is not None]  # started
        with (
            contextlib.suppress(pymysql.err.MySQLError),
            contextlib.closing(self.connect()) as killer,
            killer.cursor() as cur,
        ):
            while any(thread.is_alive() for thread in threads):
                with self._lock:
                    sessions = [conn.thread_id() for conn in self.conns]
                for session in sessions:
                    with contextlib.suppress(pymysql.err.MySQLError):  # it may have ended
                        cur.execute(f"KILL QUERY {int(session)}")
                for thread in threads:
                    thread.join(POLL_SECONDS)
        for thread in threads:
            thread.join()

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(Exception):
                conn.close()


def copy_tables(
    connect: Callable[[], Any], source: str, target: str, jobs: Sequence[Job], *, workers: int
) -> None:
    """Fill the tables of ``target`` (created, empty) from ``source``'s, ``workers`` at a
    time, in the order of ``jobs`` (the largest first is quickest). The caller keeps the
    source still (``lock_for_reading``). The first failure, or an interrupt of the calling
    thread, ends every worker's statement and is raised once all of them stopped."""
    if not jobs:
        return
    pool = _Workers(connect, source, target, jobs)
    threads = [
        threading.Thread(target=pool.run, name="branchmig-copy", daemon=True)
        for _ in range(max(1, min(workers, len(jobs))))
    ]
    try:
        for thread in threads:
            thread.start()
        for _ in threads:
            pool.ended.get()
            if pool.failed.is_set():
                break
    except BaseException:
        pool.failed.set()
        raise
    finally:
        if pool.failed.is_set():
            pool.stop(threads)
        pool.close()
    if pool.failures:
        raise pool.failures[0]


def copy_in_one_transaction(cur: Any, source: str, target: str, jobs: Sequence[Job]) -> None:
    """Fill the tables of ``target`` from ``source``'s in one REPEATABLE READ transaction on
    ``cur``'s connection, for a user who may not ``LOCK TABLES``: InnoDB reads the source
    of each INSERT … SELECT with shared locks it holds until COMMIT, so the copy is one
    instant as well, made by one connection."""
    cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
    try:
        for job in jobs:
            cur.execute(job.statement(source, target))
    except BaseException:
        with contextlib.suppress(Exception):
            cur.execute("ROLLBACK")
        raise
    cur.execute("COMMIT")
