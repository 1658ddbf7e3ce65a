"""The rule that trusts a working-tree file by its stat, and the caches' own files: what
each keeps, and that a damaged or foreign file costs only a miss."""

from __future__ import annotations

import os
import time
from pathlib import Path

from branchmig.cache import (
    CACHE_VERSION,
    HeadsMemo,
    ScriptSetCache,
    changed_since,
    racy_cutoff,
    stat_key,
)
from branchmig.graph import Revision


def test_a_rewrite_with_its_mtime_put_back_changes_the_stat_key(tmp_path: Path) -> None:
    """The same size, inode and mtime: only the ctime, which no program can set, tells."""
    path = tmp_path / "a1_step.py"
    path.write_bytes(b"revision = 'a1'\n")
    before = os.stat(path)
    time.sleep(0.02)
    path.write_bytes(b"revision = 'b1'\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_ino, after.st_mtime_ns) == (
        before.st_size,
        before.st_ino,
        before.st_mtime_ns,
    )
    assert stat_key(after) != stat_key(before)


def test_a_file_just_written_is_too_recent_to_trust_even_with_an_old_mtime(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a1_step.py"
    path.write_bytes(b"revision = 'a1'\n")
    assert changed_since(os.stat(path), racy_cutoff())
    os.utime(path, (1_600_000_000, 1_600_000_000))  # an old mtime; the ctime is now
    assert changed_since(os.stat(path), racy_cutoff())
    assert not changed_since(os.stat(path), time.time_ns() + 10**9)


def test_the_heads_memo_keeps_the_latest_answers(tmp_path: Path) -> None:
    memo = HeadsMemo(tmp_path / "heads.json")
    for n in range(HeadsMemo.LIMIT + 1):
        memo.put(f"sig{n}", {"heads": [f"r{n}"]})
    assert memo.get("sig0") is None
    assert memo.get("sig1") == {"heads": ["r1"]}
    assert memo.get(f"sig{HeadsMemo.LIMIT}") == {"heads": [f"r{HeadsMemo.LIMIT}"]}


def test_a_damaged_heads_memo_is_a_miss_and_is_written_again(tmp_path: Path) -> None:
    path = tmp_path / "heads.json"
    path.write_text("{not json")
    memo = HeadsMemo(path)
    assert memo.get("sig") is None
    memo.put("sig", {"heads": []})
    assert HeadsMemo(path).get("sig") == {"heads": []}


def test_a_script_set_of_another_version_or_signature_is_a_miss(tmp_path: Path) -> None:
    import marshal

    sets = ScriptSetCache(tmp_path / "script-sets")
    rev = Revision(id="a1", down=(), labels=(), depends_on=(), path="v/a1.py", blob="b" * 40)
    sets.put("sig", [rev], ["a warning"])
    assert sets.get("sig") == ((rev,), ("a warning",))
    assert sets.get("other") is None
    stored = next((tmp_path / "script-sets").glob("*.marshal"))
    stored.write_bytes(marshal.dumps((CACHE_VERSION + 1, "sig", [], [])))
    assert sets.get("sig") is None
    stored.write_bytes(b"\x00garbage")
    assert sets.get("sig") is None
