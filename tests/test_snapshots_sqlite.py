"""SQLite snapshots on real files, plus the backend-independent parts: mask_url, dispatch."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import branchmig.snapshots.base as snapshots_base
import branchmig.snapshots.sqlite as sqlite_backend
from branchmig.errors import BranchmigError, SnapshotError
from branchmig.snapshots import backend_for_url
from branchmig.snapshots.sqlite import SQLiteBackend
from branchmig.urls import mask_url


def rows(path: Path, query: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def execute(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def columns(path: Path, table: str) -> list[str]:
    return [row[1] for row in rows(path, f"PRAGMA table_info({table})")]  # type: ignore[misc]


def tables(path: Path) -> list[str]:
    return [r[0] for r in rows(path, "SELECT name FROM sqlite_master WHERE type='table'")]  # type: ignore[misc]


@pytest.fixture
def app_db_with_users(tmp_path: Path) -> Path:
    path = tmp_path / "project" / "app.db"
    path.parent.mkdir()
    execute(
        path,
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT)",
        "INSERT INTO users (name, email) VALUES ('ada', 'ada@example.org')",
        "INSERT INTO users (name, email) VALUES ('bob', 'bob@example.org')",
    )
    return path


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "git" / "branchmig" / "snapshots"


def backend(path: Path, store_dir: Path) -> SQLiteBackend:
    made = backend_for_url(f"sqlite:///{path}", store_dir=store_dir)
    assert isinstance(made, SQLiteBackend)
    return made


def change_data_and_schema(path: Path) -> None:
    execute(
        path,
        "DELETE FROM users WHERE name = 'bob'",
        "ALTER TABLE users DROP COLUMN email",
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT)",
        "INSERT INTO posts (title) VALUES ('hello')",
    )


def test_restore_brings_back_data_and_schema_and_consumes_the_snapshot(
    app_db_with_users: Path, store_dir: Path
) -> None:
    snaps = backend(app_db_with_users, store_dir)
    saved = snaps.save("feature1")
    assert saved.key == "feature1" and saved.backend == "sqlite"
    assert saved.size == Path(saved.location).stat().st_size > 0
    change_data_and_schema(app_db_with_users)

    snaps.restore("feature1")

    assert tables(app_db_with_users) == ["users"]
    assert columns(app_db_with_users, "users") == ["id", "name", "email"]
    assert rows(app_db_with_users, "SELECT name, email FROM users ORDER BY id") == [
        ("ada", "ada@example.org"),
        ("bob", "bob@example.org"),
    ]
    assert not snaps.exists("feature1")
    assert not Path(saved.location).exists()


def test_keep_current_as_keeps_the_replaced_content(
    app_db_with_users: Path, store_dir: Path
) -> None:
    snaps = backend(app_db_with_users, store_dir)
    snaps.save("main")
    change_data_and_schema(app_db_with_users)

    snaps.restore("main", keep_current_as="feature1")

    assert tables(app_db_with_users) == ["users"]
    assert [s.key for s in snaps.stored()] == ["feature1"]
    snaps.restore("feature1")
    assert sorted(tables(app_db_with_users)) == ["posts", "users"]
    assert columns(app_db_with_users, "users") == ["id", "name"]
    assert snaps.stored() == []


def test_stored_drop_and_exists_are_exact_per_live_database(
    app_db_with_users: Path, store_dir: Path, tmp_path: Path
) -> None:
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other_db = other_dir / "app.db"  # same file name, different project
    execute(other_db, "CREATE TABLE t (x)")
    snaps = backend(app_db_with_users, store_dir)
    others = backend(other_db, store_dir)
    assert snaps.stored() == []  # the store folder does not exist yet

    snaps.save("b-2")
    snaps.save("a_1")
    snaps.save("a_1")  # overwrite
    others.save("a_1")

    assert [s.key for s in snaps.stored()] == ["a_1", "b-2"]
    assert [s.key for s in others.stored()] == ["a_1"]
    assert snaps.exists("a_1") and not snaps.exists("c")
    assert all(s.size > 0 and s.backend == "sqlite" for s in snaps.stored())
    assert stat.S_IMODE(store_dir.stat().st_mode) == 0o700
    for snap in snaps.stored():
        assert stat.S_IMODE(Path(snap.location).stat().st_mode) == 0o600

    snaps.drop("a_1")
    snaps.drop("a_1")  # absent: no error
    snaps.drop("never")
    assert [s.key for s in snaps.stored()] == ["b-2"]
    assert others.exists("a_1")
    assert sorted(p.name for p in store_dir.iterdir()) == sorted(
        Path(s.location).name for s in snaps.stored() + others.stored()
    )


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_a_connection_held_open_sees_the_restored_rows(
    app_db_with_users: Path, store_dir: Path, journal_mode: str
) -> None:
    execute(app_db_with_users, f"PRAGMA journal_mode={journal_mode}")
    held = sqlite3.connect(app_db_with_users)  # the app server, opened before and kept open
    try:
        assert held.execute("SELECT count(*) FROM users").fetchone() == (2,)
        snaps = backend(app_db_with_users, store_dir)
        snaps.save("before")
        held.execute("INSERT INTO users (name) VALUES ('carol')")
        held.commit()
        change_data_and_schema(app_db_with_users)

        snaps.restore("before")

        assert held.execute("SELECT name FROM users ORDER BY id").fetchall() == [
            ("ada",),
            ("bob",),
        ]
        held.execute("INSERT INTO users (name) VALUES ('dan')")
        held.commit()
    finally:
        held.close()
    # The app's write after the restore landed in the live file, not in a deleted one.
    assert rows(app_db_with_users, "SELECT name FROM users ORDER BY id")[-1] == ("dan",)


def test_a_live_database_that_does_not_exist_yet_is_saved_as_empty_and_restored(
    tmp_path: Path, store_dir: Path
) -> None:
    live = tmp_path / "new.db"
    snaps = backend(live, store_dir)
    assert snaps.live_size() == 0

    saved = snaps.save("empty")

    assert saved.size == 0 and not live.exists()
    execute(live, "CREATE TABLE t (x)", "INSERT INTO t VALUES (1)")
    snaps.restore("empty")
    assert live.exists() and tables(live) == []


def test_restore_waits_then_fails_clearly_when_a_write_transaction_holds_the_file(
    app_db_with_users: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_backend, "BUSY_TIMEOUT_SECONDS", 0.3)
    snaps = backend(app_db_with_users, store_dir)
    snaps.save("before")
    writer = sqlite3.connect(app_db_with_users, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO users (name) VALUES ('eve')")
    try:
        with pytest.raises(SnapshotError, match=r"Cannot restore snapshot 'before'.*locked"):
            snaps.restore("before")
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert snaps.exists("before")  # not consumed by the failed restore
    snaps.restore("before")
    assert len(rows(app_db_with_users, "SELECT * FROM users")) == 2


def test_restoring_an_unknown_key_says_what_to_run(
    app_db_with_users: Path, store_dir: Path
) -> None:
    snaps = backend(app_db_with_users, store_dir)
    with pytest.raises(SnapshotError) as caught:
        snaps.restore("nope")
    assert str(caught.value) == (
        f"There is no snapshot 'nope' of SQLite file {app_db_with_users}. "
        "Run: branchmig snapshot list"
    )


@pytest.mark.parametrize("key", ["", "Upper", "a b", "x" * 41, "../etc", "a.b"])
def test_invalid_keys_are_refused(app_db_with_users: Path, store_dir: Path, key: str) -> None:
    with pytest.raises(SnapshotError, match="is not valid"):
        backend(app_db_with_users, store_dir).save(key)


def test_keep_current_as_the_key_being_restored_is_refused(
    app_db_with_users: Path, store_dir: Path
) -> None:
    snaps = backend(app_db_with_users, store_dir)
    snaps.save("a")
    with pytest.raises(SnapshotError, match="Choose another name"):
        snaps.restore("a", keep_current_as="a")


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:x?mode=memory&cache=shared&uri=true"]
)
def test_in_memory_databases_are_refused(url: str, store_dir: Path) -> None:
    with pytest.raises(SnapshotError, match="in-memory SQLite database"):
        backend_for_url(url, store_dir=store_dir)


def test_describe_and_relative_urls(
    tmp_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    snaps = backend_for_url("sqlite:///rel.db", store_dir=store_dir)
    assert snaps.describe() == f"SQLite file {tmp_path / 'rel.db'}"
    assert snaps.name == "sqlite"


def test_slow_operations_report_size_and_rate(
    app_db_with_users: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshots_base, "PROGRESS_AFTER_SECONDS", 0.0)
    lines: list[str] = []
    snaps = backend_for_url(
        f"sqlite:///{app_db_with_users}", store_dir=store_dir, progress=lines.append
    )
    snaps.save("a")
    snaps.restore("a")
    assert len(lines) == 2
    assert lines[0].startswith("saved ") and lines[1].startswith("restored ")
    assert " kB in " in lines[0] and lines[0].endswith("/s)")


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://app:s3cret@db:5432/app", "postgresql://app:***@db:5432/app"),
        ("postgresql+psycopg://app:p%40ss@db/app", "postgresql+psycopg://app:***@db/app"),
        ("mysql+pymysql://root:@127.0.0.1/x", "mysql+pymysql://root:***@127.0.0.1/x"),
        ("postgresql://app@db/app", "postgresql://app@db/app"),
        ("postgresql://app:pw@db/app?mail=a@b", "postgresql://app:***@db/app?mail=a%40b"),
        (
            "postgresql://db/app?user=u&password=pw&x=1",
            "postgresql://db/app?password=***&user=u&x=1",
        ),
        ("sqlite:////tmp/app.db", "sqlite:////tmp/app.db"),
        ("sqlite:///rel/app.db?mode=ro", "sqlite:///rel/app.db?mode=ro"),
        # Not a URL SQLAlchemy reads: masked as text all the same.
        ("postgresql://app:pw@db:port/app", "postgresql://app:***@db:port/app"),
    ],
)
def test_mask_url_hides_passwords(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_unsupported_dialects_are_named(store_dir: Path) -> None:
    with pytest.raises(SnapshotError, match="dialect 'mssql'") as caught:
        backend_for_url("mssql+pyodbc://sa:pw@host/db", store_dir=store_dir)
    assert "pw" not in str(caught.value)
    assert isinstance(caught.value, BranchmigError)


def test_importing_the_package_loads_no_database_library() -> None:
    code = (
        "import sys, branchmig.snapshots\n"
        "loaded = {'sqlalchemy', 'psycopg', 'pymysql', 'sqlite3'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_wal_database_with_uncheckpointed_commits_and_a_held_reader_is_saved_whole(
    app_db_with_users: Path, store_dir: Path
) -> None:
    # A reader in a transaction keeps the checkpoint from emptying the -wal file: the fast
    # file copy must not be used then, or the last commits (still in the WAL) are lost.
    execute(app_db_with_users, "PRAGMA journal_mode=wal")
    reader = sqlite3.connect(app_db_with_users, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM users").fetchone()
        execute(app_db_with_users, "INSERT INTO users (name) VALUES ('only-in-the-wal')")
        snaps = backend(app_db_with_users, store_dir)
        snaps.save("wal")
    finally:
        reader.close()
    execute(app_db_with_users, "DELETE FROM users")
    snaps.restore("wal")
    assert ("only-in-the-wal",) in rows(app_db_with_users, "SELECT name FROM users")


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_save_by_file_copy_is_a_valid_database_in_either_journal_mode(
    app_db_with_users: Path, store_dir: Path, journal_mode: str
) -> None:
    execute(app_db_with_users, f"PRAGMA journal_mode={journal_mode}")
    before = rows(app_db_with_users, "SELECT * FROM users ORDER BY id")
    stored = backend(app_db_with_users, store_dir).save("copy")
    copy = Path(stored.location)
    assert rows(copy, "PRAGMA integrity_check") == [("ok",)]
    assert rows(copy, "SELECT * FROM users ORDER BY id") == before


def test_copies_named_the_earlier_way_are_still_found(tmp_path: Path) -> None:
    """Inside a repository the copies are named after the database's path from the
    repository's folder; copies an earlier branchmig named after the absolute path are
    found, restored and dropped all the same."""
    from branchmig.snapshots.base import short_hash

    live = tmp_path / "repo" / "app.db"
    live.parent.mkdir()
    with sqlite3.connect(live) as conn:
        conn.execute("CREATE TABLE t (v TEXT)")
        conn.execute("INSERT INTO t VALUES ('kept')")
    conn.close()
    store = tmp_path / "repo" / ".git" / "branchmig" / "snapshots"
    backend = backend_for_url(f"sqlite:///{live}", store_dir=store)
    saved = Path(backend.save("new").location)
    assert saved.name != f"sqlite-app-{short_hash(str(live))}__new.db"
    shutil.copy(saved, store / f"sqlite-app-{short_hash(str(live))}__old.db")
    assert [s.key for s in backend.stored()] == ["new", "old"]
    assert backend.exists("old")
    with sqlite3.connect(live) as conn:
        conn.execute("DELETE FROM t")
    conn.close()
    backend.restore("old")
    with sqlite3.connect(live) as conn:
        assert conn.execute("SELECT v FROM t").fetchall() == [("kept",)]
    conn.close()
    assert not backend.exists("old") and [s.key for s in backend.stored()] == ["new"]


@pytest.mark.parametrize("then", ["save", "drop"])
def test_a_killed_saves_partial_file_goes_with_the_next_save(tmp_path: Path, then: str) -> None:
    """A save killed while it copied leaves its partial file; the next save, or the drop
    a recovery makes of what it was making, removes it, and leaves alone the partial file
    of a writer that is still running."""
    live = tmp_path / "app.db"
    with sqlite3.connect(live) as conn:
        conn.execute("CREATE TABLE t (v TEXT)")
    conn.close()
    store = tmp_path / "store"
    store.mkdir()
    gone = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    dead = store / f".sqlite-app-x__k1.db.{gone.stdout.strip()}.partial"
    alive = store / f".sqlite-app-x__k2.db.{os.getppid()}.partial"
    for path in (dead, alive, Path(f"{dead}-journal")):
        path.write_bytes(b"half")
    backend = backend_for_url(f"sqlite:///{live}", store_dir=store)
    if then == "save":
        backend.save("k3")
    else:
        backend.drop("k1")
    assert not dead.exists() and not Path(f"{dead}-journal").exists()
    assert alive.exists()
