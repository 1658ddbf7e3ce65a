"""What branchmig keeps under .git/branchmig: the snapshot index and what each snapshot
holds, the record of applied scripts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from branchmig.errors import StateError
from branchmig.graph import Revision
from branchmig.layout import write_private
from branchmig.snapshots.folder import SnapshotFolder
from branchmig.state import SnapshotRecord, State


def record(key: str) -> SnapshotRecord:
    return SnapshotRecord(
        key=key,
        branch="feature1",
        commit="c0ffee",
        heads=["b2"],
        database="db1",
        backend="sqlite",
        size=10,
    )


def test_what_a_snapshot_holds_is_kept_beside_the_index(tmp_path: Path) -> None:
    state = State(tmp_path)
    state.add_snapshot(record("one"), applied={"a1": "blob1", "b2": "blob2"})
    state.add_snapshot(record("two"), applied={"a1": "blob1"})
    index = json.loads((tmp_path / "snapshots.json").read_text())
    assert [e["key"] for e in index] == ["one", "two"]
    assert all("applied" not in e for e in index)  # the index stays small
    assert state.snapshot_applied("one") == {"a1": "blob1", "b2": "blob2"}
    state.remove_snapshot("one")
    assert state.snapshot_applied("one") is None
    assert sorted(p.name for p in (tmp_path / "snapshot-holds").iterdir()) == ["two.marshal"]


def test_an_index_written_by_an_earlier_version_is_read_and_carried_over(tmp_path: Path) -> None:
    old = [{**vars(record(k)), "applied": {"a1": f"blob-{k}"}} for k in ("one", "two")]
    (tmp_path / "snapshots.json").write_text(json.dumps(old))
    state = State(tmp_path)
    assert [r.key for r in state.snapshots()] == ["one", "two"]
    assert state.snapshot_applied("two") == {"a1": "blob-two"}
    state.add_snapshot(record("three"), applied={})
    assert "applied" not in (tmp_path / "snapshots.json").read_text()
    assert state.snapshot_applied("one") == {"a1": "blob-one"}


def test_the_applied_record_round_trips_and_a_broken_one_is_empty(tmp_path: Path) -> None:
    revisions = {
        "a1": Revision("a1", path="v/a1.py", blob="x1"),
        "m": Revision(
            "m", down=("a1", "b1"), labels=("lbl",), depends_on=("c",), path="v/m.py", blob="x2"
        ),
    }
    State(tmp_path).record_applied("db1", revisions)
    assert State(tmp_path).applied("db1") == revisions
    (tmp_path / "applied" / "db1.marshal").write_bytes(b"garbage")
    assert State(tmp_path).applied("db1") == {}


def _disk_events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """What reaches the disk, in order: each fsync (of the file or folder the descriptor
    names) and each rename."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        events.append(("rename", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def test_a_snapshot_copy_is_on_disk_before_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy is published only once its bytes are on disk, and its name after: a power
    cut must not leave an empty copy of a database that a restore has overwritten."""
    folder = SnapshotFolder(tmp_path / "snapshots")
    events = _disk_events(monkeypatch)
    with folder.writing("copy.db") as partial:
        partial.write_bytes(b"rows")
    target = str(tmp_path / "snapshots" / "copy.db")
    assert [kind for kind, _ in events] == ["fsync", "rename", "fsync"]
    assert events[0][1].endswith(".partial") and events[1][1] == target
    assert events[2][1] == str(tmp_path / "snapshots")
    assert Path(target).read_bytes() == b"rows"


def test_a_durable_write_waits_for_its_rename_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = _disk_events(monkeypatch)
    write_private(tmp_path / "journal.json", b"{}", durable=True)
    write_private(tmp_path / "cache.json", b"{}")
    assert [kind for kind, _ in events] == ["fsync", "rename", "fsync", "rename"]
    assert events[2][1] == str(tmp_path)


def test_branches_waiting_for_their_snapshot_are_listed_by_exact_name(tmp_path: Path) -> None:
    """``x`` and ``x/y``, ``feature1`` and ``Feature1``: one line each, no file named after
    any (an earlier branchmig's files are replaced); a list that cannot be written is an
    error, never skipped."""
    state = State(tmp_path / "branchmig")
    old = state.root / "restore-on" / "x"
    old.parent.mkdir(parents=True)
    old.write_text("")
    names = ["x", "x/y", "feature1", "Feature1"]
    records = [
        SnapshotRecord(f"k{i}", name, None, [], "db", "sqlite", 0) for i, name in enumerate(names)
    ]
    state.save_snapshots(records)
    assert (state.root / "restore-on.list").read_text().splitlines() == sorted(names)
    assert not (state.root / "restore-on").exists()

    (state.root / "restore-on.list").unlink()
    (state.root / "restore-on.list").mkdir()
    with pytest.raises(StateError, match="restore-on.list"):
        state.save_snapshots(records[:1])


def test_sha1_ids_an_earlier_branchmig_kept_in_a_sha256_repository_are_read_as_its_own(
    tmp_path: Path,
) -> None:
    """Earlier, a working-tree script's id was SHA-1 even in a SHA-256 repository: what a
    database and a snapshot hold is read with the id git gives the kept text, so the next
    move does not take every applied script for changed."""
    import hashlib

    from gitutil import git, init_repo

    root = init_repo(tmp_path / "repo", object_format="sha256")
    text = b"revision = 'a1'\n"
    (root / "a1.py").write_bytes(text)
    want = git(root, "hash-object", "a1.py").strip()
    old = hashlib.sha1(b"blob %d\0" % len(text) + text).hexdigest()
    state = State(root / ".git" / "branchmig")
    state.keep_script(old, text)
    state.record_applied("db", {"a1": Revision("a1", path="v/a1.py", blob=old)})
    state.add_snapshot(SnapshotRecord("k1", "main", None, ["a1"], "db", "sqlite", 0), {"a1": old})

    again = State(root / ".git" / "branchmig")
    assert again.applied("db")["a1"].blob == want
    assert again.snapshot_applied("k1") == {"a1": want}
    assert again.kept_script(want) == text


def test_a_held_lock_names_its_holder_or_says_it_is_not_known_yet(tmp_path: Path) -> None:
    """Issue 24: "Another branchmig (pid ?) is migrating"."""
    import fcntl

    from branchmig.errors import LockedError

    state = State(tmp_path / "branchmig")
    with state.lock():
        pass  # a finished branchmig leaves its pid, one line
    lock = tmp_path / "branchmig" / "lock"
    assert lock.read_text() == f"{os.getpid()}\n"
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another one, as it holds the lock
        os.pwrite(fd, b"4242\n", 0)
        os.ftruncate(fd, 5)
        held_by = r"Another branchmig \(pid 4242\) is migrating"
        with pytest.raises(LockedError, match=held_by), State(tmp_path / "branchmig").lock():
            pass
        os.ftruncate(fd, 0)  # the instant between its lock and its write
        with pytest.raises(LockedError) as caught, State(tmp_path / "branchmig").lock():
            pass
        assert "pid ?" not in str(caught.value)
        assert "Another branchmig (pid not known yet) is migrating" in str(caught.value)
    finally:
        os.close(fd)
