"""One snapshot over several databases (Flask-Migrate ``--multidb``), on real SQLite files:
a key names a copy of each, and a failure in one database leaves the others as they were."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from branchmig.errors import SnapshotError
from branchmig.snapshots import backend_for
from branchmig.snapshots.sqlite import SQLiteBackend
from branchmig.snapshots.together import Together


def _db(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (v TEXT)")
        conn.execute("DELETE FROM t")
        conn.execute("INSERT INTO t VALUES (?)", (value,))
    conn.close()


def _value(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("SELECT v FROM t").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a" / "app.db", tmp_path / "b" / "users.db"
    _db(a, "a1")
    _db(b, "b1")
    return a, b


def _together(files: tuple[Path, Path], store: Path, store_b: Path | None = None) -> Together:
    a, b = files
    return Together(
        [
            ("", SQLiteBackend(f"sqlite:///{a}", store_dir=store)),
            ("users", SQLiteBackend(f"sqlite:///{b}", store_dir=store_b or store)),
        ]
    )


def test_one_key_saves_and_restores_every_database(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = files
    both = backend_for(
        [("", f"sqlite:///{a}"), ("users", f"sqlite:///{b}")], store_dir=tmp_path / "store"
    )
    assert isinstance(both, Together) and both.name == "sqlite"
    saved = both.save("k1")
    assert saved.size == a.stat().st_size + b.stat().st_size
    _db(a, "a2")
    _db(b, "b2")
    both.restore("k1", keep_current_as="k2")
    assert (_value(a), _value(b)) == ("a1", "b1")
    assert [s.key for s in both.stored()] == ["k2"] and not both.exists("k1")
    both.drop("k2")
    assert both.stored() == []


def test_one_database_is_its_own_backend(files: tuple[Path, Path], tmp_path: Path) -> None:
    backend = backend_for([("", f"sqlite:///{files[0]}")], store_dir=tmp_path / "store")
    assert isinstance(backend, SQLiteBackend)


def test_a_save_that_fails_in_one_database_keeps_no_copy(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    both = _together(files, tmp_path / "store", store_b=blocker / "store")
    with pytest.raises(SnapshotError):
        both.save("k1")
    assert not list((tmp_path / "store").glob("*k1*"))  # the first database's copy went
    assert not both.exists("k1")


def test_a_copy_missing_in_one_database_is_no_snapshot(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    a, _ = files
    both = _together(files, tmp_path / "store")
    SQLiteBackend(f"sqlite:///{a}", store_dir=tmp_path / "store").save("half")
    assert not both.exists("half") and both.stored() == []
    _db(a, "a2")
    with pytest.raises(SnapshotError, match="no copy of the database users"):
        both.restore("half")
    assert _value(a) == "a2"  # nothing restored
    both.drop("half")
    assert not list((tmp_path / "store").glob("*half*"))


def test_a_restore_that_fails_part_way_puts_the_first_database_back(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = files
    both = _together(files, tmp_path / "store")
    both.save("k1")
    _db(a, "a2")
    shutil.rmtree(b.parent)  # the second database's restore cannot write its file
    with pytest.raises(SnapshotError, match="does not exist"):
        both.restore("k1", keep_current_as="k2")
    assert _value(a) == "a2"  # swapped back: the databases stay together
    assert SQLiteBackend(f"sqlite:///{a}", store_dir=tmp_path / "store").exists("k1")
