"""The snapshot lifecycle off the hook's own path: each way a user was told to take that
used to leave a branch's rows where no checkout brought them back (issue 10's findings),
on a real project, real git and a real SQLite file."""

from __future__ import annotations

import json
import resource
import shutil
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest
from e2e_projects import (
    BASE,
    BIN,
    BRANCHMIG,
    EMAILS,
    F1,
    F2,
    Project,
    commit_slow_feature2,
    emails,
    insert_users,
    kill_mid_switch,
    set_alembic_url,
    sqlite_tables,
    sqlite_version,
)


def users(p: Project, db: Path | None = None) -> list[tuple[str, str]]:
    with sqlite3.connect(db or p.db_path) as conn:
        return emails(conn)


def snapshots(p: Project) -> dict[str, dict[str, object]]:
    return {s["key"]: s for s in json.loads(p.ok("snapshot", "list", "--json").stdout)["snapshots"]}


def alembic(p: Project, *args: str) -> None:
    proc = p.run(str(BIN / "alembic"), *args)
    assert proc.returncode == 0, proc.stderr


def test_adoption_after_plain_alembic_keeps_the_branchs_rows(
    alembic_repo_with_two_feature_branches: Project,
) -> None:
    """Upgraded with plain Alembic on feature1, then `git checkout main` (no hooks yet):
    "Can't locate revision". `branchmig sync` then `install`, and feature1's rows come
    back with its checkout."""
    p = alembic_repo_with_two_feature_branches
    p.git("checkout", "-q", "feature1")
    alembic(p, "upgrade", "heads")
    insert_users(p.db_path)
    p.git("checkout", "-q", "main")
    out = p.ok("sync")
    assert "saving the database of 'feature1'" in out.stderr
    assert sqlite_version(p.db_path) == {BASE}
    p.ok("install")
    out = p.checkout("feature1")
    assert "restored the snapshot of 'feature1'" in out.stderr, out.stderr
    assert users(p) == EMAILS


def test_reset_hard_then_sync_keeps_the_rows_written_before_the_reset(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    p.ok("install")
    p.checkout("-b", "work", "feature1")
    with sqlite3.connect(p.db_path) as conn:
        conn.execute("INSERT INTO users (name, email) VALUES ('cy', 'cy@example.com')")
    p.git("reset", "-q", "--hard", "feature2")  # runs no hook
    p.ok("sync")
    assert sqlite_version(p.db_path) == {F2}
    # feature1 kept its own rows when 'work' was made on its commit; the row written on
    # 'work' is kept in work's snapshot, which no branch restores now that 'work' was reset
    # to feature2: status names it, and it can be restored by name.
    out = p.checkout("feature1")
    assert "restored" in out.stderr, out.stderr
    assert users(p) == EMAILS
    listed = json.loads(p.ok("snapshot", "list", "--json").stdout)["snapshots"]
    (work,) = [s for s in listed if s["branch"] == "work" and s["heads"] == [F1]]
    p.ok("snapshot", "restore", work["key"])
    assert users(p) == [*EMAILS, ("cy", "cy@example.com")]


@pytest.mark.parametrize("point", ["journal", "saved", "step", "migrated", "done"])
def test_a_hook_killed_at_any_point_then_sync_keeps_every_branchs_rows(
    db_at_feature1_head_with_emails: Project, point: str
) -> None:
    """SIGKILL inside the hook's move, at each of its steps; then `branchmig sync` (as the
    hook's message says) and a checkout back: feature1's rows come back."""
    p = db_at_feature1_head_with_emails
    p.ok("install")
    killed = p.run("git", "checkout", "feature2", env={"BRANCHMIG_FAILPOINT": f"{point}:kill"})
    assert killed.returncode == 0  # git's checkout is done whatever the hook did
    assert p.journal.exists()
    out = p.ok("sync")
    assert "Traceback" not in out.stderr
    assert sqlite_version(p.db_path) == {F2}
    assert not p.journal.exists()
    out = p.checkout("feature1")
    assert "Traceback" not in out.stderr
    assert sqlite_version(p.db_path) == {F1}
    assert users(p) == EMAILS


def test_a_failed_save_keeps_the_snapshot_before_it(
    db_at_feature1_head_with_emails: Project,
) -> None:
    """A save that fails (a file-size limit: a full disk) is one line, exit 1; the
    database and the snapshot saved earlier are as they were."""
    p = db_at_feature1_head_with_emails
    earlier = snapshots(p)
    p.ok("snapshot", "save")
    before = snapshots(p)
    assert len(before) == len(earlier) + 1

    def small_files() -> None:
        limit = p.db_path.stat().st_size // 2
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        [BRANCHMIG, "switch", "feature2"],
        cwd=p.root,
        env=p.environ(),
        capture_output=True,
        text=True,
        preexec_fn=small_files,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "File too large" in line and "Nothing changed" in line, line
    assert p.branch() == "feature1" and sqlite_version(p.db_path) == {F1}
    assert users(p) == EMAILS
    assert snapshots(p) == before


def test_a_killed_switch_without_snapshot_is_not_called_put_back(
    db_at_feature1_head_with_emails: Project, tmp_path: Path
) -> None:
    p = db_at_feature1_head_with_emails
    marker = tmp_path / "sleeping"
    commit_slow_feature2(p, marker)
    kill_mid_switch(p, marker, "--no-snapshot")
    out = p.ok("status")
    text = out.stdout + out.stderr
    assert "was put back" not in text and "matches the working tree" not in text
    assert f"'{F2}'" in text and "half made" in text
    data = p.status()
    assert data["suspect"]["revision"] == F2 and data["in_step"] is False
    # the sync that fails on the half-made table names it too
    proc = p.branchmig("sync", "--no-snapshot")
    if proc.returncode != 0:
        assert f"'{F2}'" in proc.stderr and "half made" in proc.stderr


def test_a_worktree_keeps_the_database_it_took_under_its_branch(
    alembic_repo_with_two_feature_branches: Project, tmp_path: Path
) -> None:
    """One database for every worktree (an absolute URL): `git worktree add ../wt
    feature2` moves it, keeping feature1's rows under 'feature1', which the main
    worktree's next sync restores."""
    p = alembic_repo_with_two_feature_branches
    db = tmp_path / "shared.db"
    set_alembic_url(p.root, f"sqlite:///{db}")
    p.commit("one shared database")
    p.git("checkout", "-q", "feature1")
    p.git("merge", "-q", "--no-edit", "main")
    p.git("checkout", "-q", "feature2")
    p.git("merge", "-q", "--no-edit", "main")
    p.git("checkout", "-q", "feature1")
    p.ok("sync")
    insert_users(db)
    p.ok("install")
    out = p.run("git", "worktree", "add", str(tmp_path / "wt"), "feature2")
    assert out.returncode == 0 and "Traceback" not in out.stderr
    assert sqlite_version(db) == {F2}
    held = list(snapshots(p).values())
    assert [s["branch"] for s in held] == ["feature1"], held
    out = p.ok("sync")
    assert sqlite_version(db) == {F1}
    assert users(p, db) == EMAILS


def test_a_relative_sqlite_url_is_another_database_in_each_worktree(
    db_at_feature1_head_with_emails: Project, tmp_path: Path
) -> None:
    p = db_at_feature1_head_with_emails
    p.ok("install")
    out = p.run("git", "worktree", "add", str(tmp_path / "wt"), "feature2")
    assert "Traceback" not in out.stderr
    assert sqlite_version(tmp_path / "wt" / "app.db") == {F2}
    assert sqlite_version(p.db_path) == {F1} and users(p) == EMAILS
    assert p.status()["pending"] == []


def test_branch_names_differing_in_case_keep_their_own_rows(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    p.git("branch", "Feature1", "feature2")
    p.ok("switch", "Feature1")
    with sqlite3.connect(p.db_path) as conn:
        conn.execute("INSERT INTO posts (title) VALUES ('hello')")
    p.ok("switch", "feature1")
    assert users(p) == EMAILS
    p.ok("switch", "Feature1")
    with sqlite3.connect(p.db_path) as conn:
        assert conn.execute("SELECT title FROM posts").fetchall() == [("hello",)]
    keys = snapshots(p)
    assert {s["branch"] for s in keys.values()} == {"feature1"}


def test_status_does_not_call_an_applied_revision_pending(
    alembic_repo_with_two_feature_branches: Project,
) -> None:
    """The database at F1 (plain Alembic on feature1), main checked out: BASE is applied,
    not pending; F1 is what a sync reverts."""
    p = alembic_repo_with_two_feature_branches
    p.git("checkout", "-q", "feature1")
    alembic(p, "upgrade", "heads")
    p.git("checkout", "-q", "main")
    data = p.status()
    assert (data["pending"], data["unknown"], data["in_step"]) == ([], [F1], False)
    out = p.ok("sync", "--json")
    moved = json.loads(out.stdout)
    assert (moved["downgrade"], moved["upgrade"]) == ([F1], [])


def test_a_merge_concluded_by_commit_brings_the_database_along(
    db_at_feature1_head_with_emails: Project,
) -> None:
    """git runs post-commit, not post-merge, when a conflicted merge is concluded."""
    p = db_at_feature1_head_with_emails
    p.git("checkout", "-q", "feature2")
    (p.root / "notes.txt").write_text("feature2\n")
    p.commit("feature2 notes")
    p.git("checkout", "-q", "feature1")
    (p.root / "notes.txt").write_text("feature1\n")
    p.commit("feature1 notes")
    p.ok("install")
    merge = p.run("git", "merge", "--no-edit", "feature2")
    assert merge.returncode != 0 and "CONFLICT" in merge.stdout
    assert sqlite_version(p.db_path) == {F1}  # post-merge did not run
    (p.root / "notes.txt").write_text("both\n")
    p.git("add", "notes.txt")
    out = p.run("git", "commit", "--no-edit")
    assert out.returncode == 0
    assert "Traceback" not in out.stderr
    assert sqlite_version(p.db_path) == {F1, F2}, out.stderr
    assert "2 migration heads" in out.stderr
    assert users(p) == EMAILS


def test_status_and_list_say_where_the_index_and_the_copies_disagree(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    p.ok("switch", "feature2")
    key = next(iter(snapshots(p)))
    files = [f for f in (p.state_dir / "snapshots").iterdir() if key in f.name]
    assert len(files) == 1
    stray = files[0].with_name(files[0].name.replace(key, "left-by-a-kill"))
    stray.write_bytes(files[0].read_bytes())
    files[0].unlink()
    status = p.ok("status").stdout
    assert f"snapshot:   {key}" in status and "missing" in status
    assert "unindexed:  a snapshot copy 'left-by-a-kill'" in status
    assert "matches the working tree" in status  # the database itself is fine
    assert "(missing" in p.ok("snapshot", "list").stdout


def test_what_branchmig_keeps_is_readable_by_its_owner_only(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    p.ok("install")
    p.checkout("feature2")
    for path in [p.state_dir, *p.state_dir.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
    assert sqlite_tables(p.db_path) >= {"posts"}


def test_a_branch_on_the_same_commit_still_gets_its_own_rows_back(
    db_at_feature1_head_with_emails: Project,
) -> None:
    """`reset --hard` puts another branch on feature1's commit; the checkout of feature1
    then changes no migration (PREV == NEW), and its snapshot comes back all the same."""
    p = db_at_feature1_head_with_emails
    p.ok("install")
    p.checkout("main")
    p.checkout("-b", "copy", "feature2")
    p.git("reset", "-q", "--hard", "feature1")
    p.ok("sync")
    assert users(p) == [("ada", None), ("bob", None)]  # migrated: feature1's rows wait
    out = p.checkout("feature1")
    assert "restored the snapshot of 'feature1'" in out.stderr, out.stderr
    assert users(p) == EMAILS
    # A branch made on feature1's commit takes the database as it is; feature1 keeps a
    # copy of its rows (and gets them back, whatever 'another' writes).
    out = p.checkout("-b", "another")
    assert "saving the database of 'feature1'" in out.stderr, out.stderr
    assert users(p) == EMAILS


def test_a_fast_forward_rebase_brings_the_database_along(
    db_at_feature1_head_with_emails: Project,
) -> None:
    """With nothing to replay, git runs post-checkout (mid-rebase) and no post-rewrite."""
    p = db_at_feature1_head_with_emails
    p.ok("install")
    p.checkout("main")
    out = p.run("git", "rebase", "feature1")
    assert out.returncode == 0 and "Traceback" not in out.stderr
    assert p.branch() == "main"
    assert sqlite_version(p.db_path) == {F1}, out.stderr
    data = p.status()
    assert (data["pending"], data["unknown"], data["owner"]) == ([], [], "main")


def test_sync_after_a_hook_that_never_ran_saves_for_the_branch_the_checkout_left(
    db_at_feature1_head_with_emails: Project,
) -> None:
    """A branch made on the same commit (no hook runs) then left by a checkout whose hook
    was killed before it started: its rows are the ones the database holds, and `sync`
    keeps them for it (branchmig's record still names the branch before it)."""
    p = db_at_feature1_head_with_emails
    p.ok("install")
    p.checkout("feature2")
    p.checkout("-b", "copy")
    with sqlite3.connect(p.db_path) as conn:
        conn.execute("INSERT INTO posts (title) VALUES ('written on copy')")
    skipped = p.run("git", "checkout", "feature1", env={"BRANCHMIG_SKIP_HOOK": "1"})
    assert skipped.returncode == 0
    out = p.ok("sync")
    assert "saving the database of 'copy'" in out.stderr or "of 'copy'" in out.stderr, out.stderr
    assert users(p) == EMAILS
    p.checkout("copy")
    with sqlite3.connect(p.db_path) as conn:
        assert conn.execute("SELECT title FROM posts").fetchall() == [("written on copy",)]


def test_a_moved_repository_still_brings_each_branchs_rows_back(
    db_at_feature1_head_with_emails: Project, tmp_path: Path
) -> None:
    """`mv project elsewhere`: the snapshots taken before are still found by the checkout
    that restores them (their files were named after the database's absolute path, so a
    moved repository's index named copies no backend could find)."""
    p = db_at_feature1_head_with_emails
    p.ok("install")
    p.checkout("feature2")
    moved_to = tmp_path / "moved" / "project"
    moved_to.parent.mkdir()
    shutil.move(p.root, moved_to)
    q = Project(moved_to, p.kind, moved_to / "alembic" / "versions", p.url, dict(p.env))
    status = q.status()
    assert [s["present"] for s in status["snapshots"]] == [True], status["snapshots"]
    out = q.checkout("feature1")
    assert "restored the snapshot of 'feature1'" in out.stderr, out.stderr
    assert users(q) == EMAILS
    q.checkout("feature2")
    assert sqlite_version(q.db_path) == {F2}


def _branch_of_its_own(p: Project, name: str) -> None:
    """``git checkout -b NAME`` from feature1 (the hook keeps feature1's rows), a commit
    touching no migration, a row of NAME's own, then back to feature1 (the hook keeps
    NAME's rows as its snapshot and restores feature1's)."""
    p.ok("install")
    p.checkout("-q", "-b", name)
    (p.root / "NOTES").write_text(f"{name}\n")
    p.commit(f"{name}: notes only")
    with sqlite3.connect(p.db_path) as conn:
        conn.execute("INSERT INTO users (name, email) VALUES ('dora', 'dora@example.com')")
    out = p.checkout("-q", "feature1")
    assert f"kept the database of '{name}'" in out.stderr, out.stderr
    assert users(p) == EMAILS


def _no_hook(p: Project, *args: str) -> None:
    proc = p.run("git", "-c", f"core.hooksPath={p.root / 'no-hooks'}", "checkout", "-q", *args)
    assert proc.returncode == 0, proc.stderr


DORA = [*EMAILS, ("dora", "dora@example.com")]


def test_a_trip_with_no_hook_then_sync_keeps_the_other_branchs_snapshot(
    db_at_feature1_head_with_emails: Project,
) -> None:
    """feature1 → docs → feature1 with no hook (same scripts), a row written on feature1,
    then `sync`: the rows never left feature1, so nothing is saved, and docs' own
    snapshot (not the live rows, labelled docs) is what its checkout restores."""
    p = db_at_feature1_head_with_emails
    _branch_of_its_own(p, "docs")
    before = {k: s["branch"] for k, s in snapshots(p).items()}
    with sqlite3.connect(p.db_path) as conn:
        conn.execute("INSERT INTO users (name, email) VALUES ('fred', 'fred@example.com')")
    _no_hook(p, "docs")
    _no_hook(p, "feature1")
    out = p.ok("sync")
    assert "saving" not in out.stderr, out.stderr
    assert {k: s["branch"] for k, s in snapshots(p).items()} == before
    p.checkout("-q", "docs")
    assert users(p) == DORA
    p.checkout("-q", "feature1")
    assert users(p) == [*EMAILS, ("fred", "fred@example.com")]


@pytest.mark.parametrize("how", ["branchmig switch", "git checkout"])
def test_leaving_a_branch_entered_with_no_hook_saves_the_rows_for_the_branch_they_are_of(
    db_at_feature1_head_with_emails: Project, how: str
) -> None:
    """feature1 → docs with no hook: the database still holds feature1's rows while docs'
    snapshot waits. Leaving docs for feature2 (its hook or a switch, both told the branch
    left is docs) keeps them as feature1's, and docs' snapshot stays docs'."""
    p = db_at_feature1_head_with_emails
    _branch_of_its_own(p, "docs")
    _no_hook(p, "docs")
    out = p.checkout("-q", "feature2") if how == "git checkout" else p.ok("switch", "feature2")
    assert "saving the database of 'feature1'" in out.stderr, out.stderr
    assert "of 'docs'" not in out.stderr, out.stderr
    p.checkout("-q", "docs")
    assert users(p) == DORA
    p.checkout("-q", "feature1")
    assert users(p) == EMAILS


def test_sync_after_a_checkout_the_hook_passes_by_saves_nothing(
    db_at_feature1_head_with_emails: Project,
) -> None:
    """feature1 → docs (same scripts, another commit, no snapshot of docs' waiting) with no
    hook, then `sync`: the hook would have changed nothing, nor does the sync (it used to
    keep a copy labelled feature1, and every later checkout between the two swapped)."""
    p = db_at_feature1_head_with_emails
    p.ok("install")
    p.run("git", "-c", f"core.hooksPath={p.root / 'no-hooks'}", "branch", "docs")
    _no_hook(p, "docs")
    (p.root / "NOTES").write_text("docs\n")
    p.commit("docs: notes only")
    _no_hook(p, "feature1")
    _no_hook(p, "docs")
    out = p.ok("sync")
    assert "saving" not in out.stderr and snapshots(p) == {}, out.stderr
    out = p.checkout("-q", "feature1")
    assert out.stderr == "" and users(p) == EMAILS
