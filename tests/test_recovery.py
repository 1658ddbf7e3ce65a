"""A switch killed half-way (SIGKILL while a migration runs) is put back by the next
branchmig command: the database as before the switch, the branch checked out again."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from e2e_projects import (
    BASE,
    BRANCHMIG,
    F1,
    F2,
    Project,
    commit_slow_feature2,
    interruptible,
    kill_mid_switch,
    sqlite_dump,
    sqlite_version,
    wait_for,
)


@pytest.fixture
def feature2_with_a_slow_migration(
    db_at_feature1_head_with_emails: Project, tmp_path: Path
) -> tuple[Project, Path]:
    """feature1 checked out, its database holding emails; feature2's migration creates
    ``posts``, touches a marker file, then sleeps 30 s."""
    p = db_at_feature1_head_with_emails
    marker = tmp_path / "sleeping"
    commit_slow_feature2(p, marker)
    return p, marker


def test_another_branchmig_waits_for_the_lock(
    feature2_with_a_slow_migration: tuple[Project, Path],
) -> None:
    p, marker = feature2_with_a_slow_migration
    proc = subprocess.Popen(
        [BRANCHMIG, "switch", "feature2"],
        cwd=p.root,
        env=p.environ(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: marker.exists() or proc.poll() is not None)
        other = p.branchmig("sync")
        assert other.returncode == 1
        assert f"Another branchmig (pid {proc.pid})" in other.stderr
        assert "Traceback" not in other.stderr
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    p.ok("status")
    assert p.branch() == "feature1"


def test_killed_switch_without_snapshot_says_where_the_database_is(
    feature2_with_a_slow_migration: tuple[Project, Path],
) -> None:
    p, marker = feature2_with_a_slow_migration
    kill_mid_switch(p, marker, "--no-snapshot")
    # A copy a killed writer left half-made (its process gone) goes with the recovery.
    gone = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    folder = p.state_dir / "snapshots"
    folder.mkdir(exist_ok=True)
    partial = folder / f".sqlite-app-x__k.db.{gone.stdout.strip()}.partial"
    partial.write_bytes(b"half")
    proc = p.branchmig("sync", "--no-snapshot")
    assert not partial.exists()
    assert "was interrupted" in proc.stderr
    assert f"'{BASE}'" in proc.stderr and "branchmig sync" in proc.stderr
    assert not p.journal.exists()
    # the sync itself then goes on: feature2's slow migration meets the half-made table
    assert sqlite_version(p.db_path) in ({BASE}, {F2})


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_switch_stopped_while_git_checks_out_puts_the_tree_back(
    db_at_feature1_head_with_emails: Project, tmp_path: Path, sig: signal.Signals
) -> None:
    """The whole group stopped while git writes the working tree, by SIGKILL (git leaves
    its index.lock) or by Ctrl-C's SIGINT: git has replaced feature1's script with
    feature2's but not moved HEAD. The switch itself (on SIGINT) or the next command (after
    SIGKILL) puts the tree back as feature1 has it and the database as it was; never a
    sync to the half-made tree."""
    p = db_at_feature1_head_with_emails
    marker, slow = tmp_path / "smudging", tmp_path / "slow"
    # A smudge filter that blocks on a file git writes after the migrations ('zz' sorts
    # after 'alembic/'): git has written feature2's script and is still checking out.
    smudge = f"sh -c 'if [ -e {slow} ]; then touch {marker}; sleep 30; fi; cat'"
    p.git("config", "filter.slow.smudge", smudge)
    p.git("config", "filter.slow.clean", "cat")
    p.git("checkout", "-q", "feature2")
    (p.root / ".gitattributes").write_text("zz_slow.txt filter=slow\n")
    (p.root / "zz_slow.txt").write_text("feature2\n")
    p.commit("feature2: a slow file")
    p.git("checkout", "-q", "feature1")
    assert not (p.root / "zz_slow.txt").exists()
    slow.touch()
    before = sqlite_dump(p.db_path)
    tree_before = p.git("status", "--porcelain")
    proc = subprocess.Popen(
        [BRANCHMIG, "switch", "feature2"],
        cwd=p.root,
        env=p.environ(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=interruptible,
    )
    try:
        wait_for(lambda: marker.exists() or proc.poll() is not None)
        assert proc.poll() is None, "the switch ended before git could be killed"
        os.killpg(proc.pid, sig)
    finally:
        code = proc.wait(timeout=20)
        slow.unlink()
    assert p.branch() == "feature1"  # HEAD never moved
    if sig == signal.SIGKILL:
        assert (p.root / "alembic" / "versions" / f"{F2}_posts.py").exists()  # half made
    else:
        assert code != 0
        assert not p.journal.exists()
        said = proc.stderr.read().decode() if proc.stderr else ""
        assert "Traceback" not in said, said
    proc = p.branchmig("status")
    assert proc.returncode == 0, proc.stderr
    assert p.git("status", "--porcelain") == tree_before
    assert not (p.root / "alembic" / "versions" / f"{F2}_posts.py").exists()
    assert sqlite_dump(p.db_path) == before
    data = p.status()
    assert (data["db_heads"], data["pending"], data["unknown"]) == ([F1], [], [])
    # and the switch then works through git's own checkout
    assert p.branchmig("switch", "feature2").returncode == 0
    assert p.branch() == "feature2"
