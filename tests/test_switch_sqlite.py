"""``branchmig switch`` / ``sync`` / ``status`` end to end on a plain Alembic project and a
SQLite file: the seed scenario, deleted branches, edited migrations, dry runs, dirty trees,
failing migrations and unreachable databases."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
from e2e_projects import (
    BASE,
    BIN,
    EMAILS,
    F1,
    F1_SCRIPT,
    F1B,
    F2,
    Project,
    build_alembic_template,
    commit_raising_feature2,
    emails,
    feature1_gains_phone,
    insert_users,
    make_seed_project,
    script,
    set_alembic_url,
    sqlite_columns,
    sqlite_dump,
    sqlite_tables,
    sqlite_version,
)


@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
def test_a_round_trip_restores_the_snapshot_in_either_object_format(
    tmp_path: Path, object_format: str
) -> None:
    """In a SHA-256 repository (git 3's default) the working tree's scripts are the
    commit's: nothing is pending, a move reverts only the branch's own revision, and
    coming back restores the branch's snapshot."""
    build_alembic_template(tmp_path / "template", object_format=object_format)
    p = make_seed_project(tmp_path / "template", tmp_path / "project", kind="alembic")
    p.ok("switch", "feature1")
    insert_users(p.db_path)
    status = p.status()
    assert (status["pending"], status["unknown"]) == ([], []), status

    out = p.ok("switch", "feature2")
    assert f"downgrade {BASE}" not in out.stdout + out.stderr, out.stdout + out.stderr
    assert "users" in sqlite_tables(p.db_path)
    snapshots = {s["branch"]: s for s in p.status()["snapshots"]}
    assert snapshots["feature1"]["restored_by"] == ["feature1"], snapshots
    out = p.ok("switch", "feature1")
    assert "Restored snapshot" in out.stdout, out.stdout + out.stderr
    with sqlite3.connect(p.db_path) as conn:
        assert emails(conn) == EMAILS


def test_status_json_names_what_the_branch_lacks(db_at_feature1_head_with_emails: Project) -> None:
    p = db_at_feature1_head_with_emails
    p.git("checkout", "-q", "feature2")  # no hooks installed: the database stays behind
    data = p.status()
    assert set(data) >= {
        "database",
        "db_heads",
        "code_heads",
        "pending",
        "unknown",
        "unknown_found_in",
        "snapshots",
    }
    assert data["database"] == "sqlite:///app.db"
    assert data["db_heads"] == [F1]
    assert data["code_heads"] == [F2]
    assert data["pending"] == [F2]
    assert data["unknown"] == [F1]
    assert "feature1" in data["unknown_found_in"][F1]
    assert isinstance(data["snapshots"], list)
    p.ok("sync")
    data = p.status()
    assert (data["db_heads"], data["pending"], data["unknown"]) == ([F2], [], [])


def test_dry_run_changes_nothing(db_at_feature1_head_with_emails: Project) -> None:
    p = db_at_feature1_head_with_emails
    before = sqlite_dump(p.db_path)
    out = p.ok("switch", "feature2", "--dry-run")
    assert F1 in out.stdout and F2 in out.stdout
    assert p.branch() == "feature1"
    assert sqlite_dump(p.db_path) == before
    assert not any(p.state_dir.joinpath("snapshots").iterdir())
    p.git("checkout", "-q", "feature2")
    p.ok("sync", "--dry-run")
    assert sqlite_dump(p.db_path) == before


def test_dirty_migrations_folder_refuses_switch(db_at_feature1_head_with_emails: Project) -> None:
    p = db_at_feature1_head_with_emails
    before = sqlite_dump(p.db_path)
    p.write("ffff00000001_wip.py", script("ffff00000001", F1, "    pass", "    pass"))
    proc = p.branchmig("switch", "feature2")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "ffff00000001_wip.py" in proc.stderr and "branchmig switch feature2" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert p.branch() == "feature1"
    assert sqlite_dump(p.db_path) == before


def test_deleted_branch_is_reverted_by_sync(db_at_feature1_head_with_emails: Project) -> None:
    p = db_at_feature1_head_with_emails
    p.git("checkout", "-q", "main")  # hooks not installed: the database stays at F1
    p.git("branch", "-q", "-D", "feature1")
    assert sqlite_version(p.db_path) == {F1}
    p.ok("sync")
    assert sqlite_version(p.db_path) == {BASE}
    assert "email" not in sqlite_columns(p.db_path, "users")
    assert p.current().returncode == 0


def test_deleted_branch_is_reverted_from_the_kept_copy(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    p.git("checkout", "-q", "main")
    p.forget_branch("feature1")
    p.ok("sync")
    assert sqlite_version(p.db_path) == {BASE}
    assert "email" not in sqlite_columns(p.db_path, "users")


def test_edited_migration_is_redone(db_at_feature1_head_with_emails: Project) -> None:
    p = db_at_feature1_head_with_emails
    edited = F1_SCRIPT.replace(
        '    op.add_column("users", sa.Column("email", sa.String(100), nullable=True))',
        '    op.add_column("users", sa.Column("email", sa.String(100), nullable=True))\n'
        '    op.add_column("users", sa.Column("phone", sa.String(20), nullable=True))',
    ).replace(
        '        batch.drop_column("email")',
        '        batch.drop_column("phone")\n        batch.drop_column("email")',
    )
    p.write(f"{F1}_email.py", edited)
    p.commit("feature1: users.phone too")
    out = p.ok("sync", "--no-snapshot")
    assert "Reverted 1, applied 1" in out.stdout
    assert sqlite_version(p.db_path) == {F1}
    assert sqlite_columns(p.db_path, "users") == ["id", "name", "email", "phone"]
    p.ok("switch", "main")  # reverted with the new text: phone goes too
    assert sqlite_columns(p.db_path, "users") == ["id", "name"]


def test_migration_raising_without_snapshot_names_last_revision_and_sync(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    commit_raising_feature2(p)
    proc = p.branchmig("switch", "feature2", "--no-snapshot")
    assert proc.returncode == 1
    last = [ln for ln in proc.stderr.splitlines() if ln.startswith("branchmig: ")][-1]
    assert "RuntimeError: posts cannot be created today" in last
    assert f"'{BASE}'" in last and "branchmig sync" in last, last
    assert sqlite_version(p.db_path) == {BASE}
    assert p.branch() == "feature2"  # where the fixed script and `sync` finish the job
    assert not p.journal.exists()


def test_unreachable_sqlite_database_is_one_line(db_at_main_head: Project) -> None:
    p = db_at_main_head
    set_alembic_url(p.root, "sqlite:///no/such/folder/app.db")
    p.commit("point at a folder that does not exist")
    for args in (("status",), ("sync",), ("switch", "feature1")):
        proc = p.branchmig(*args)
        assert proc.returncode in (1, 2), args
        assert "Traceback" not in proc.stderr
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("branchmig:")]
        assert len(errors) == 1 and "unable to open database file" in errors[0], proc.stderr
    assert p.branch() == "main"
    assert not (p.root / "no").exists()


def test_unreachable_postgres_database_is_one_line_without_password(
    db_at_main_head: Project,
) -> None:
    pytest.importorskip("psycopg")
    p = db_at_main_head
    set_alembic_url(p.root, "postgresql+psycopg://app:s3cretpw@127.0.0.1:1/app")
    p.commit("point at a closed port")
    before = sqlite_dump(p.db_path)
    proc = p.branchmig("switch", "feature1")
    assert proc.returncode in (1, 2)
    assert "Traceback" not in proc.stderr and "s3cretpw" not in proc.stdout + proc.stderr
    assert len([ln for ln in proc.stderr.splitlines() if ln.startswith("branchmig:")]) == 1
    assert p.branch() == "main"
    assert sqlite_dump(p.db_path) == before


def test_snapshot_restored_then_what_arrived_since_applied(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    p.ok("switch", "feature2")
    feature1_gains_phone(p)
    out = p.ok("switch", "feature1")
    assert "Restored snapshot" in out.stdout
    assert sqlite_version(p.db_path) == {F1B}
    assert sqlite_columns(p.db_path, "users") == ["id", "name", "email", "phone"]
    with sqlite3.connect(p.db_path) as conn:
        assert emails(conn) == EMAILS
    assert [s["branch"] for s in p.status()["snapshots"]] == ["feature2"]


def test_failure_after_a_restore_keeps_both_databases(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    p.ok("switch", "feature2")
    feature1_gains_phone(p, raising=True)
    before = sqlite_dump(p.db_path)
    proc = p.branchmig("switch", "feature1")
    assert proc.returncode == 1 and "RuntimeError: no phones today" in proc.stderr
    assert sqlite_dump(p.db_path) == before
    assert p.branch() == "feature2"
    status = p.branchmig("status", "--json")
    assert status.returncode == 1  # the failed switch is named until a move completes
    assert [s["branch"] for s in json.loads(status.stdout)["snapshots"]] == ["feature1"]
    # fixed, the next switch still finds feature1's snapshot with its emails
    p.git("checkout", "-q", "feature1")
    fixed = p.versions / f"{F1B}_phone.py"
    fixed.write_text(fixed.read_text().replace('\n    raise RuntimeError("no phones today")', ""))
    p.commit("feature1: users.phone, fixed")
    p.git("checkout", "-q", "feature2")
    out = p.ok("switch", "feature1")
    assert "Restored snapshot" in out.stdout
    with sqlite3.connect(p.db_path) as conn:
        assert emails(conn) == EMAILS
    assert sqlite_version(p.db_path) == {F1B}


def test_a_script_missing_from_every_ref_is_one_line_and_changes_nothing(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    p.git("checkout", "-q", "main")
    p.forget_branch("feature1")
    for kept in (p.state_dir / "scripts").iterdir():
        kept.unlink()
    before = sqlite_dump(p.db_path)
    proc = p.branchmig("sync")
    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("branchmig:")]
    assert "Traceback" not in proc.stderr
    assert len(errors) == 1 and F1 in errors[0], errors
    assert errors[0].endswith("then run: branchmig sync")
    assert sqlite_dump(p.db_path) == before
    assert not any((p.state_dir / "snapshots").iterdir())
    assert p.branch() == "main"


def test_alembic_own_log_lines_only_when_asked(db_at_feature1_head_with_emails: Project) -> None:
    p = db_at_feature1_head_with_emails
    quiet = p.ok("switch", "feature2", "--no-snapshot")
    assert f"reverted {F1}" in quiet.stderr and f"applied  {F2}" in quiet.stderr
    assert "INFO" not in quiet.stderr  # no "Context impl", no "Running downgrade"
    told = p.ok("-v", "switch", "feature1", "--no-snapshot")
    assert f"Running downgrade {F2}" in told.stderr
    assert f"Running upgrade {BASE} -> {F1}" in told.stderr
    (p.root / "pyproject.toml").write_text("[tool.branchmig]\nalembic_log = true\n")
    p.commit("alembic_log")
    told = p.ok("switch", "main", "--no-snapshot")
    assert f"Running downgrade {F1}" in told.stderr


SEED_004_DOWNGRADE = '    op.drop_column("users", "phone")'


def _feature1_gains_an_indexed_phone(p: Project) -> None:
    """Seed 004: an indexed column whose downgrade drops it outside batch mode, which
    SQLite refuses ("error in index ix_users_phone after drop column")."""
    p.write(
        f"{F1B}_phone.py",
        script(
            F1B,
            F1,
            '    op.add_column("users", sa.Column("phone", sa.String(20), nullable=True))\n'
            '    op.create_index("ix_users_phone", "users", ["phone"])',
            SEED_004_DOWNGRADE,
        ),
    )
    p.commit("feature1: users.phone, indexed")


def test_seed_004_is_warned_about_then_names_its_fix(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    _feature1_gains_an_indexed_phone(p)
    p.ok("sync")
    path = f"alembic/versions/{F1B}_phone.py"
    line = (p.root / path).read_text().splitlines().index(SEED_004_DOWNGRADE) + 1
    fix = (
        f"revision '{F1B}' ({path}, line {line}) runs op.drop_column('users', 'phone') "
        "outside batch mode: the column is indexed (ix_users_phone), which SQLite cannot "
        "drop in place. In its downgrade, drop the index first, then write `with "
        "op.batch_alter_table('users') as batch: batch.drop_column('phone')` (or set "
        "render_as_batch=True in env.py's context.configure)"
    )
    plan = p.ok("plan", ".", "main")
    assert f"warning: on SQLite, {fix}" in plan.stderr, plan.stderr
    check = p.ok("check", "--against", "main")
    assert f"warning: on SQLite, {fix}" in check.stderr, check.stderr

    before = sqlite_dump(p.db_path)
    proc = p.branchmig("switch", "main")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"branchmig: warning: on SQLite, {fix}" in proc.stderr  # said before it ran
    said = proc.stderr.strip().splitlines()[-1]
    assert said.startswith(f"branchmig: Downgrade of '{F1B}' failed: ")
    assert "Nothing changed" in said and said.endswith(f"To fix it: {fix}"), said
    assert sqlite_dump(p.db_path) == before and p.branch() == "feature1"


@pytest.mark.parametrize("snapshot", ["--snapshot", "--no-snapshot"])
def test_a_rehearsal_that_fails_never_touches_the_live_database(
    db_at_feature1_head_with_emails: Project, snapshot: str
) -> None:
    p = db_at_feature1_head_with_emails
    _feature1_gains_an_indexed_phone(p)
    p.ok("sync")
    before = p.db_path.read_bytes()
    stamp = p.db_path.stat().st_mtime_ns
    proc = p.branchmig("switch", "main", "--rehearse", snapshot)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    said = proc.stderr.strip().splitlines()[-1]
    assert said.startswith(
        f"branchmig: The rehearsal on a copy of the database failed: Downgrade of '{F1B}' failed"
    ), said
    assert "To fix it:" in said and said.endswith("the live database was not touched"), said
    assert p.db_path.read_bytes() == before and p.db_path.stat().st_mtime_ns == stamp
    assert p.branch() == "feature1"
    assert not list((p.state_dir / "snapshots").glob("*rehearsal*"))


def test_a_rehearsal_that_works_then_moves_the_live_database(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    # Untracked, so every checkout keeps it: the hook rehearses too.
    (p.root / "pyproject.toml").write_text("[tool.branchmig]\nrehearse = true\n")
    p.ok("install")
    out = p.checkout("main")
    assert "rehearsing the move on a copy" in out.stderr, out.stderr
    assert sqlite_version(p.db_path) == {BASE}
    out = p.checkout("feature1")
    assert "restored the snapshot of 'feature1'" in out.stderr
    with sqlite3.connect(p.db_path) as conn:
        assert emails(conn) == EMAILS


def test_quiet_leaves_only_results_and_errors(db_at_feature1_head_with_emails: Project) -> None:
    p = db_at_feature1_head_with_emails
    out = p.ok("-q", "switch", "feature2")
    assert out.stderr == "" and "applied 1" in out.stdout
    loud = p.ok("switch", "feature1")
    assert "restoring the snapshot of 'feature1'" in loud.stderr


def test_status_reads_a_script_rewritten_in_place_with_its_mtime_put_back(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    time.sleep(2.1)  # past the racy window (mtime and ctime): trusted by their stat
    assert p.status()["code_heads"] == [F1]
    path = next(p.versions.glob(f"{F1}*.py"))
    before = os.stat(path)
    text = path.read_bytes()
    renamed = text.replace(f"= '{F1}'".encode(), b"= 'f1e000000002'")
    assert renamed != text
    with open(path, "r+b") as fh:  # in place, the same size
        fh.write(renamed)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size
    status = p.status()
    assert status["code_heads"] == ["f1e000000002"]
    assert status["unknown"] == [F1]


# -- a revision cycle is refused wherever the graph is used ---------------------------------

NEW = "n1e000000001"  # a revision that arrives with the cycle: it must not be applied


def write_cycle(p: Project) -> None:
    """Two scripts that name each other (off the path to the heads) and a new one on F1."""
    p.write("c1_loop.py", script("c1", "c2", "    pass", "    pass"))
    p.write("c2_loop.py", script("c2", "c1", "    pass", "    pass"))
    p.write(f"{NEW}_step.py", script(NEW, F1, "    op.create_table('n1')", "    pass"))


def refused_for_the_cycle(p: Project, *args: str) -> str:
    before = (sqlite_dump(p.db_path), p.git("rev-parse", "HEAD"), p.branch())
    listed = p.ok("snapshot", "list", "--json").stdout
    proc = p.branchmig(*args)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert (sqlite_dump(p.db_path), p.git("rev-parse", "HEAD"), p.branch()) == before
    assert p.ok("snapshot", "list", "--json").stdout == listed
    assert not p.journal.exists()
    return lines[0]


CYCLE = (
    "branchmig: Revisions form a cycle: c2 -> c1 -> c2 (in 'alembic/versions/c2_loop.py', "
    "'alembic/versions/c1_loop.py'); Alembic refuses such a history. Point the down_revision "
    "of one of them at an earlier revision, then run: branchmig check"
)


@pytest.mark.parametrize("command", [("status",), ("sync",), ("plan", "HEAD", ".")])
def test_a_cycle_in_the_working_tree_is_refused(
    db_at_feature1_head_with_emails: Project, command: tuple[str, ...]
) -> None:
    p = db_at_feature1_head_with_emails
    write_cycle(p)
    assert p.run(str(BIN / "alembic"), "heads").returncode != 0  # Alembic refuses it too
    assert refused_for_the_cycle(p, *command) == CYCLE


def test_a_cycle_on_the_branch_entered_is_refused(db_at_feature1_head_with_emails: Project) -> None:
    p = db_at_feature1_head_with_emails
    p.git("checkout", "-q", "-b", "looped")
    write_cycle(p)
    p.commit("a cycle")
    p.git("checkout", "-q", "feature1")
    assert refused_for_the_cycle(p, "switch", "looped") == CYCLE
    assert refused_for_the_cycle(p, "plan", "feature1", "looped") == CYCLE
    # Leaving a branch whose cycle is off the path the database took is the way out.
    p.git("checkout", "-q", "looped")
    p.ok("switch", "feature2")
    assert sqlite_version(p.db_path) == {F2}
