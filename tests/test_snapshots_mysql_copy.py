"""The MariaDB save's copy over several connections, against the real server: one instant
of the live database whatever writes meanwhile, the writers that hold it up named, a
failing worker stopping the others, and the true sizes the live line shows."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pymysql
import pytest
from db_servers import mysql_connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

import branchmig.snapshots.mysql as mysql_backend
from branchmig.snapshots import SessionsBlockingError, backend_for_url, mysql_copy
from branchmig.snapshots.mysql import MySQLBackend
from branchmig.snapshots.mysql_copy import Job

pytestmark = pytest.mark.mysql


def run(url: str, *statements: str, args: Any = None) -> None:
    with mysql_connection(url, database=make_url(url).database) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement, args)


def query(url: str, statement: str) -> list[tuple[Any, ...]]:
    with mysql_connection(url, database=make_url(url).database) as conn, conn.cursor() as cur:
        cur.execute(statement)
        return list(cur.fetchall())


def backend(url: str, tmp_path: Path, **options: Any) -> MySQLBackend:
    made = backend_for_url(url, store_dir=tmp_path / "store", **options)
    assert isinstance(made, MySQLBackend)
    return made


@contextmanager
def ledger_writer(url: str, *, retried: tuple[int, ...]) -> Iterator[None]:
    """An app committing a row to ``debits`` and one to ``credits`` in each transaction,
    over and over, from before the block (20 commits in) until its end. A transaction
    the server rolls back with an error in ``retried`` is tried again, as apps do (the
    save's LOCK TABLES and a transaction can deadlock; the server picks one side)."""
    stop = threading.Event()
    committed = [0]

    def write() -> None:
        with mysql_connection(url, database=make_url(url).database) as conn:
            conn.autocommit(False)
            with conn.cursor() as cur:
                while not stop.is_set():
                    try:
                        cur.execute("INSERT INTO debits (amount) VALUES (7)")
                        cur.execute("INSERT INTO credits (amount) VALUES (7)")
                        conn.commit()
                        committed[0] += 1
                    except pymysql.err.OperationalError as err:
                        assert err.args[0] in retried, err
                        conn.rollback()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while committed[0] < 20:
            time.sleep(0.01)
        yield
    finally:
        stop.set()
        writer.join()


@pytest.fixture
def every_table_its_own_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The small databases of these tests copied as a large one is: in parallel."""
    monkeypatch.setattr(mysql_copy, "PARALLEL_FROM_BYTES", 0)


@pytest.fixture
def db_with_two_ledgers(fresh_mysql_url: str) -> str:
    """``debits`` and ``credits``, which every transaction of the app writes together."""
    run(
        fresh_mysql_url,
        "CREATE TABLE debits (id INT AUTO_INCREMENT PRIMARY KEY, amount INT NOT NULL)",
        "CREATE TABLE credits (id INT AUTO_INCREMENT PRIMARY KEY, amount INT NOT NULL, "
        "KEY (amount))",
        "CREATE TABLE notes (id INT PRIMARY KEY, body TEXT)",
        "INSERT INTO debits (amount) SELECT seq FROM seq_1_to_5000",
        "INSERT INTO credits (amount) SELECT seq FROM seq_1_to_5000",
        "INSERT INTO notes SELECT seq, REPEAT('n', 200) FROM seq_1_to_2000",
    )
    return fresh_mysql_url


@pytest.mark.usefixtures("every_table_its_own_worker")
def test_writers_during_a_parallel_save_never_split_a_transaction(
    db_with_two_ledgers: str, tmp_path: Path
) -> None:
    """The workers copy ``debits`` and ``credits`` on separate connections while the app
    commits a row to each in one transaction: the copy holds both rows or neither."""
    url = db_with_two_ledgers
    with ledger_writer(url, retried=(1213,)):
        snaps = backend(url, tmp_path)
        for key in ("a", "b", "c"):
            snaps.save(key)
    for key in ("a", "b", "c"):
        copy = snaps.stored()[[s.key for s in snaps.stored()].index(key)].location
        debits = query(url, f"SELECT count(*), sum(amount) FROM `{copy}`.debits")
        credits = query(url, f"SELECT count(*), sum(amount) FROM `{copy}`.credits")
        assert debits == credits and debits[0][0] > 5000, key


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=5),
    workers=st.integers(min_value=1, max_value=4),
)
def test_any_tables_come_back_exactly_whatever_the_number_of_workers(
    fresh_mysql_url: str, tmp_path: Path, rows: list[int], workers: int
) -> None:
    url = fresh_mysql_url
    live = make_url(url).database
    with mysql_connection(url, database=live) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (live,)
        )
        for (table,) in cur.fetchall():
            cur.execute(f"DROP TABLE `{table}`")
        for i, count in enumerate(rows):
            cur.execute(f"CREATE TABLE t{i} (id INT PRIMARY KEY, v VARCHAR(40), UNIQUE (v))")
            if count:
                cur.execute(f"INSERT INTO t{i} SELECT seq, MD5(seq + {i}) FROM seq_1_to_{count}")
    before = {i: query(url, f"CHECKSUM TABLE t{i}") for i in range(len(rows))}
    snaps = backend(url, tmp_path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mysql_copy, "worker_count", lambda cur, sizes: workers)
        snaps.save("x")
    run(url, *(f"DELETE FROM t{i}" for i in range(len(rows))))
    snaps.restore("x")
    assert {i: query(url, f"CHECKSUM TABLE t{i}") for i in range(len(rows))} == before
    assert [
        count for i in range(len(rows)) for (count,) in query(url, f"SELECT count(*) FROM t{i}")
    ] == rows


@pytest.fixture
def short_lock_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mysql_backend, "LOCK_WAIT_SECONDS", 1)


@pytest.fixture
def writer_left_open(db_with_two_ledgers: str) -> Iterator[Any]:
    """A session that wrote ``debits`` and has not committed."""
    url = db_with_two_ledgers
    with mysql_connection(url, database=make_url(url).database) as held:
        held.autocommit(False)
        with held.cursor() as cur:
            cur.execute("INSERT INTO debits (amount) VALUES (1)")
        yield held


@pytest.mark.usefixtures("short_lock_wait")
def test_an_open_write_holds_up_the_save_which_names_it_or_ends_it(
    db_with_two_ledgers: str, writer_left_open: Any, tmp_path: Path
) -> None:
    url = db_with_two_ledgers
    snaps = backend(url, tmp_path)
    with pytest.raises(SessionsBlockingError) as caught:
        snaps.save("held")
    assert f"id {writer_left_open.thread_id()} (" in str(caught.value)
    assert str(caught.value).startswith(
        f"Cannot save snapshot 'held' of MySQL database {snaps.live!r}"
    )
    # The facts, not the advice: the CLI and the hook each add their own.
    assert [f"id {writer_left_open.thread_id()} (" in s for s in caught.value.sessions] == [True]
    assert "--terminate-connections" not in str(caught.value)
    assert snaps.stored() == []
    said: list[str] = []
    ending = backend(url, tmp_path, terminate_connections=True)
    ending.progress = said.append
    saved = ending.save("held")
    assert [line for line in said if "ended 1 session(s)" in line], said
    # The write never committed: the copy is the database before it.
    assert query(url, f"SELECT count(*) FROM `{saved.location}`.debits") == [(5000,)]


def test_a_failing_worker_ends_the_others_statements(db_with_two_ledgers: str) -> None:
    """One worker's table is missing from the target; the other's long copy is ended
    rather than left to finish, and the error is the first worker's."""
    url = db_with_two_ledgers
    live = make_url(url).database
    target = f"{live}_copy_target"
    server = make_url(url).set(database="").render_as_string(hide_password=False)
    with mysql_connection(server) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{target}`")
        cur.execute(f"CREATE TABLE `{target}`.slow (id INT PRIMARY KEY, v INT)")
    try:
        parsed = make_url(url)

        def connect() -> Any:
            return pymysql.connect(
                host=parsed.host, port=parsed.port or 3306, user=parsed.username,
                password=parsed.password or "", autocommit=True,
            )  # fmt: skip

        run(url, "CREATE VIEW slow AS SELECT seq AS id, SLEEP(0.002) AS v FROM seq_1_to_100000")
        started = time.perf_counter()
        with pytest.raises(pymysql.err.ProgrammingError, match="missing"):
            mysql_copy.copy_tables(
                connect,
                live,
                target,
                [Job("slow", ("id", "v")), Job("missing", ("id",))],
                workers=2,
            )
        assert time.perf_counter() - started < 30  # the slow one takes 200 s
        with mysql_connection(server) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM information_schema.PROCESSLIST "
                "WHERE INFO LIKE %s AND ID <> CONNECTION_ID()",
                (f"%INTO `{target}`%",),
            )
            assert cur.fetchone() == (0,)
    finally:
        with mysql_connection(server) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{target}`")


def test_the_live_line_measures_the_files_of_the_live_database_and_the_copy(
    db_with_two_ledgers: str, tmp_path: Path
) -> None:
    """Statistics of a table just filled in bulk say a page or two; the files say what is
    written. Measured as the live line measures them, on connections of their own."""
    url = db_with_two_ledgers
    snaps = backend(url, tmp_path)
    run(url, "INSERT INTO notes SELECT seq + 2000, REPEAT('m', 900) FROM seq_1_to_3000")
    live_files = snaps._measured_files(snaps.live)
    saved = snaps.save("sized")
    copy_files = snaps._measured_files(saved.location)
    assert live_files >= 3000 * 900 and copy_files >= 3000 * 900
    # A live table grown row by row holds whole extents it has not filled; a copy built
    # in bulk is tighter: the line may end short of its total, never far past it.
    assert 0.3 < copy_files / live_files < 1.5
    assert snaps._measured_files(f"{snaps.live}-none") == 0


@pytest.mark.usefixtures("every_table_its_own_worker")
def test_an_interrupted_save_leaves_no_copy_no_lock_and_no_statement(
    fresh_mysql_url: str, tmp_path: Path
) -> None:
    """Ctrl-C while the workers copy: their statements are ended, the read lock goes, and
    the half-made copy is dropped before the KeyboardInterrupt goes on."""
    url = fresh_mysql_url
    live = make_url(url).database
    run(
        url,
        "CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(100), KEY (v))",
        "CREATE TABLE other (id INT PRIMARY KEY, v VARCHAR(100))",
        "INSERT INTO big SELECT seq, MD5(seq) FROM seq_1_to_300000",
        "INSERT INTO other SELECT seq, MD5(seq) FROM seq_1_to_300000",
    )
    copying = threading.Event()

    def interrupt_once_copying() -> None:
        with mysql_connection(url) as conn, conn.cursor() as cur:
            while not copying.is_set():
                cur.execute(
                    "SELECT count(*) FROM information_schema.PROCESSLIST "
                    "WHERE INFO LIKE %s AND ID <> CONNECTION_ID()",
                    (f"INSERT INTO `{live}__bm_cut`%",),
                )
                if cur.fetchone()[0]:
                    copying.set()
                    # A real SIGINT, as a terminal's Ctrl-C sends: it wakes a main thread
                    # blocked waiting for the workers (interrupt_main only sets a flag).
                    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
                time.sleep(0.005)

    watcher = threading.Thread(target=interrupt_once_copying, daemon=True)
    snaps = backend(url, tmp_path)
    # Ctrl-C as a terminal delivers it, even where the test run ignores SIGINT.
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        watcher.start()
        with pytest.raises(KeyboardInterrupt):
            snaps.save("cut")
    finally:
        signal.signal(signal.SIGINT, handler)
    copying.set()
    watcher.join()
    assert snaps.stored() == []
    schemas = query(url, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
    assert [name for (name,) in schemas if name.startswith(f"{live}__bm_")] == []
    started = time.perf_counter()
    run(url, "INSERT INTO big VALUES (0, 'written at once')")  # the read lock is gone
    assert time.perf_counter() - started < 5
    running = query(
        url,
        "SELECT count(*) FROM information_schema.PROCESSLIST "
        f"WHERE INFO LIKE 'INSERT INTO `{live}__bm_%' AND ID <> CONNECTION_ID()",
    )
    assert running == [(0,)]


@pytest.fixture
def user_who_may_not_lock(db_with_two_ledgers: str) -> Iterator[str]:
    """The ledgers' URL as a user with every privilege a save needs but LOCK TABLES."""
    live = make_url(db_with_two_ledgers).database
    user = f"nolock_{live}"[:32]
    grants = (
        "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, CREATE VIEW, "
        "SHOW VIEW, TRIGGER, REFERENCES, PROCESS"
    )
    run(db_with_two_ledgers, f"CREATE USER '{user}'@'%'", f"GRANT {grants} ON *.* TO '{user}'@'%'")
    try:
        yield (
            make_url(db_with_two_ledgers)
            .set(username=user, password=None)
            .render_as_string(hide_password=False)
        )
    finally:
        run(db_with_two_ledgers, f"DROP USER '{user}'@'%'")


@pytest.mark.usefixtures("every_table_its_own_worker")
def test_a_user_who_may_not_lock_tables_saves_one_instant_on_one_connection(
    user_who_may_not_lock: str, tmp_path: Path
) -> None:
    """Without the LOCK TABLES privilege the copy is one REPEATABLE READ transaction, as
    strong: a writer's transaction is in the copy whole or not at all."""
    url = user_who_may_not_lock
    # The copy's shared locks make the writer wait, and may time it out.
    with ledger_writer(url, retried=(1205, 1213)):
        snaps = backend(url, tmp_path)
        snaps.save("nolock")
    copy = next(s.location for s in snaps.stored() if s.key == "nolock")
    debits = query(url, f"SELECT count(*), sum(amount) FROM `{copy}`.debits")
    credits = query(url, f"SELECT count(*), sum(amount) FROM `{copy}`.credits")
    assert debits == credits and debits[0][0] > 5000
    snaps.restore("nolock")
    assert query(url, "SELECT count(*) FROM notes") == [(2000,)]
