"""Real ``git checkout`` through the hooks ``branchmig install`` wrote: the database
follows branch checkouts, and nothing else."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest
from e2e_projects import (
    BASE,
    EMAILS,
    F1,
    F2,
    Project,
    emails,
    sqlite_columns,
    sqlite_dump,
    sqlite_tables,
    sqlite_version,
)


@pytest.fixture
def hooks_installed_db_at_feature1(db_at_feature1_head_with_emails: Project) -> Project:
    p = db_at_feature1_head_with_emails
    p.ok("install")
    return p


def test_checkouts_through_the_hook_carry_the_database(
    hooks_installed_db_at_feature1: Project,
) -> None:
    p = hooks_installed_db_at_feature1
    held = sqlite3.connect(p.db_path, isolation_level=None)
    try:
        out = p.checkout("feature2")
        assert "Traceback" not in out.stderr
        assert sqlite_version(p.db_path) == {F2}
        assert "posts" in sqlite_tables(p.db_path)
        assert "email" not in sqlite_columns(p.db_path, "users")
        assert F2 in p.current().stdout

        out = p.checkout("feature1")
        assert "restored the snapshot of 'feature1'" in out.stderr
        assert sqlite_version(p.db_path) == {F1}
        assert "posts" not in sqlite_tables(p.db_path)
        assert emails(held) == EMAILS
        assert F1 in p.current().stdout

        p.checkout("main")
        assert sqlite_version(p.db_path) == {BASE}
        assert p.current().returncode == 0
        p.checkout("feature1")
        assert emails(held) == EMAILS
        assert sqlite_version(p.db_path) == {F1}
    finally:
        held.close()


def test_file_checkouts_and_same_commit_branches_leave_the_database_alone(
    hooks_installed_db_at_feature1: Project,
) -> None:
    p = hooks_installed_db_at_feature1
    before = sqlite_dump(p.db_path)
    stamp = p.db_path.stat().st_mtime_ns
    listed = json.loads(p.ok("snapshot", "list", "--json").stdout)
    assert "feature1" not in [s["branch"] for s in listed["snapshots"]]
    migration = p.versions / f"{F1}_email.py"
    migration.write_text("# scribbled over\n")
    out = p.checkout("--", str(migration.relative_to(p.root)))
    assert "branchmig" not in out.stderr
    assert sqlite_dump(p.db_path) == before
    assert p.db_path.stat().st_mtime_ns == stamp
    # A branch made on the same commit takes the database as it is; the branch left keeps
    # a copy of its rows, and the live file is not written.
    out = p.checkout("-b", "feature1-copy")
    assert "Traceback" not in out.stderr
    assert sqlite_dump(p.db_path) == before
    assert p.db_path.stat().st_mtime_ns == stamp
    assert not (p.state_dir / "journal.json").exists()
    listed = json.loads(p.ok("snapshot", "list", "--json").stdout)
    assert [s["branch"] for s in listed["snapshots"]].count("feature1") == 1


def test_a_branch_made_on_the_same_commit_leaves_each_branch_its_rows(
    hooks_installed_db_at_feature1: Project,
) -> None:
    """`checkout -b exp` on feature1, rows changed on exp, feature2, then back: feature1
    gets its rows as it left them, exp gets exp's."""
    p = hooks_installed_db_at_feature1
    p.checkout("-b", "exp")
    with sqlite3.connect(p.db_path) as conn:
        conn.execute("UPDATE users SET email = 'exp-' || email")
    with sqlite3.connect(p.db_path) as conn:
        on_exp = emails(conn)
    assert on_exp != EMAILS
    p.checkout("feature2")
    assert sqlite_version(p.db_path) == {F2}
    out = p.checkout("feature1")
    assert "Traceback" not in out.stderr
    assert sqlite_version(p.db_path) == {F1}
    with sqlite3.connect(p.db_path) as conn:
        assert emails(conn) == EMAILS
    out = p.checkout("exp")  # the same commit: exp's rows come back
    assert sqlite_version(p.db_path) == {F1}
    with sqlite3.connect(p.db_path) as conn:
        assert emails(conn) == on_exp
    p.checkout("feature1")
    with sqlite3.connect(p.db_path) as conn:
        assert emails(conn) == EMAILS


def test_an_existing_post_checkout_hook_is_kept_and_chained(db_at_main_head: Project) -> None:
    p = db_at_main_head
    hooks = p.root / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    theirs = hooks / "post-checkout"
    theirs.write_text('#!/bin/sh\necho "$@" >> "$(git rev-parse --git-dir)/their-hook.log"\n')
    os.chmod(theirs, 0o755)
    out = p.ok("install")
    assert "kept your post-checkout" in out.stdout
    p.checkout("feature1")
    assert sqlite_version(p.db_path) == {F1}
    log = (p.root / ".git" / "their-hook.log").read_text().split()
    assert log[-1] == "1" and len(log) == 3
    p.ok("uninstall")
    assert theirs.read_text().startswith("#!/bin/sh\necho")
    p.checkout("main")  # their hook alone now: the database stays at F1
    assert sqlite_version(p.db_path) == {F1}
    assert len((p.root / ".git" / "their-hook.log").read_text().splitlines()) == 2


def test_a_failing_hook_never_fails_git_and_says_what_to_run(
    hooks_installed_db_at_feature1: Project,
) -> None:
    p = hooks_installed_db_at_feature1
    p.git("checkout", "-q", "feature2")  # through the hook
    p.git("checkout", "-q", "feature1")
    ini = p.root / "alembic.ini"
    ini.write_text(ini.read_text().replace("sqlite:///app.db", "sqlite:///gone/app.db"))
    out = p.checkout("feature2")
    assert out.returncode == 0
    assert "Traceback" not in out.stderr
    assert "branchmig status" in out.stderr or "branchmig sync" in out.stderr
    assert p.branch() == "feature2"
    assert sqlite_version(p.db_path) == {F1}


def test_a_merge_applies_what_it_brought_in(db_at_main_head: Project) -> None:
    p = db_at_main_head
    p.ok("install")
    out = p.run("git", "merge", "-q", "--no-edit", "feature1")
    assert out.returncode == 0, out.stderr
    assert sqlite_version(p.db_path) == {F1}
    assert "email" in sqlite_columns(p.db_path, "users")
    assert p.current().returncode == 0


def test_a_rebase_migrates_once_after_it_and_says_the_heads_it_left(
    hooks_installed_db_at_feature1: Project,
) -> None:
    p = hooks_installed_db_at_feature1
    p.checkout("feature2")
    assert sqlite_version(p.db_path) == {F2}
    out = p.run("git", "rebase", "feature1")
    assert out.returncode == 0, out.stderr
    # Both migrations now hang off the base: the rebase brought feature1's in, and the
    # database gets it once, from post-rewrite (not from the checkout the rebase starts
    # with), with a word about the two heads.
    assert sqlite_version(p.db_path) == {F1, F2}
    assert out.stderr.count("  applied  ") == 1, out.stderr
    assert "the rebase left 2 migration heads" in out.stderr
    assert "branchmig merge-heads" in out.stderr
    assert "Traceback" not in out.stderr
    assert not p.journal.exists()


def test_a_new_worktree_gets_its_own_database_at_its_branch(
    hooks_installed_db_at_feature1: Project,
) -> None:
    p = hooks_installed_db_at_feature1
    before = sqlite_dump(p.db_path)
    worktree = p.root.parent / "feature2-worktree"
    out = p.run("git", "worktree", "add", "-q", str(worktree), "feature2")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    # sqlite:///app.db is relative to the worktree's top level: a database of its own.
    assert sqlite_version(worktree / "app.db") == {F2}
    assert sqlite_dump(p.db_path) == before


def test_a_branch_without_the_app_leaves_the_database_alone(
    hooks_installed_db_at_feature1: Project,
) -> None:
    p = hooks_installed_db_at_feature1
    before = sqlite_dump(p.db_path)
    p.git("checkout", "-q", "--orphan", "docs")
    p.git("rm", "-rq", "--cached", ".")
    for path in p.root.iterdir():
        if path.name not in (".git", "app.db"):
            p.run("rm", "-rf", str(path))
    (p.root / "index.md").write_text("# docs\n")
    p.git("add", "index.md")
    p.git("commit", "-q", "-m", "docs")
    out = p.checkout("feature1")
    out = p.checkout("docs")
    assert "no Alembic project in this checkout" in out.stderr
    assert "Traceback" not in out.stderr
    assert sqlite_dump(p.db_path) == before
    out = p.checkout("feature1")
    assert "Traceback" not in out.stderr
    assert sqlite_dump(p.db_path) == before


def test_a_nested_branch_made_after_a_deleted_one_gets_its_own_rows_back(
    hooks_installed_db_at_feature1: Project,
) -> None:
    """``x`` is deleted, its snapshot kept; ``x/y`` then has a snapshot of its own, which
    a checkout from another branch on the same commit brings back (a file kept for ``x``
    once stopped ``x/y``'s mark being written, and the hook left the other's rows)."""
    p = hooks_installed_db_at_feature1
    p.checkout("-q", "-b", "x")
    p.checkout("-q", "feature2")  # x's rows kept for it: F1's downgrade drops a column
    p.git("branch", "-q", "-D", "x")
    p.checkout("-q", "-b", "x/y")
    with sqlite3.connect(p.db_path) as conn:
        conn.execute("INSERT INTO posts (title) VALUES ('of x/y')")
    p.checkout("-q", "main")  # x/y's rows kept for it: F2's downgrade drops posts
    p.checkout("-q", "-b", "other", "x/y")
    with sqlite3.connect(p.db_path) as conn:
        conn.execute("DELETE FROM posts")
        conn.execute("INSERT INTO posts (title) VALUES ('of other')")
    out = p.checkout("x/y")  # the same commit: only x/y's waiting snapshot moves the hook
    assert "Traceback" not in out.stderr
    with sqlite3.connect(p.db_path) as conn:
        assert [r[0] for r in conn.execute("SELECT title FROM posts")] == ["of x/y"], out.stderr


def test_checkouts_with_git_dir_and_work_tree_set_carry_the_database(
    db_at_feature1_head_with_emails: Project,
) -> None:
    """The git dir kept elsewhere, under another name than ``.git``, and named by
    ``GIT_DIR`` / ``GIT_WORK_TREE`` (relative ones, as users type them): install, the
    hook and the commands find the repository as git does."""
    p = db_at_feature1_head_with_emails
    store = p.root.parent / "store"
    store.mkdir()
    (p.root / ".git").rename(store / "project.git")
    named = {"GIT_DIR": "../store/project.git", "GIT_WORK_TREE": "."}
    assert "not inside a git repository" in p.branchmig("status").stderr
    p.ok("install", env=named)
    assert (store / "project.git" / "hooks" / "post-checkout").is_file()

    out = p.run("git", "checkout", "-q", "feature2", env=named)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert sqlite_version(p.db_path) == {F2}
    out = p.run("git", "checkout", "-q", "feature1", env=named)
    assert "restored the snapshot of 'feature1'" in out.stderr, out.stderr
    with sqlite3.connect(p.db_path) as conn:
        assert emails(conn) == EMAILS
    status = json.loads(p.ok("status", "--json", env=named).stdout)
    assert (status["branch"], status["db_heads"], status["pending"]) == ("feature1", [F1], [])
