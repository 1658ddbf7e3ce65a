"""``branchmig snapshot list | save | restore | drop | prune`` on a real project."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from e2e_projects import (
    EMAILS,
    F1,
    Project,
    make_seed_project,
    sqlite_version,
)
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool


def listed(p: Project) -> dict[str, dict[str, Any]]:
    data = json.loads(p.ok("snapshot", "list", "--json").stdout)
    return {s["key"]: s for s in data["snapshots"]}


def users(p: Project) -> list[tuple[str, str]]:
    with sqlite3.connect(p.db_path) as conn:
        return conn.execute("SELECT name, email FROM users ORDER BY id").fetchall()


def test_save_restore_and_drop_by_hand(db_at_feature1_head_with_emails: Project) -> None:
    p = db_at_feature1_head_with_emails
    out = p.ok("snapshot", "save", "before-cleanup")
    assert "Saved snapshot 'before-cleanup'" in out.stdout
    snap = listed(p)["before-cleanup"]
    assert (snap["branch"], snap["heads"], snap["backend"], snap["present"]) == (
        "feature1",
        [F1],
        "sqlite",
        True,
    )
    assert snap["size"] > 0 and snap["purpose"] == "manual"

    with sqlite3.connect(p.db_path) as conn:
        conn.execute("DELETE FROM users")
    out = p.ok("snapshot", "restore", "before-cleanup")
    assert users(p) == EMAILS
    kept = out.stdout.split("snapshot '")[1].split("'")[0]
    assert kept.startswith("replaced-") and "it is kept" in out.stdout
    after = listed(p)
    assert after[kept]["purpose"] == "replaced"  # what it replaced is kept
    # A save point made by name can be returned to twice.
    assert after["before-cleanup"]["present"] and after["before-cleanup"]["size"] > 0
    with sqlite3.connect(p.db_path) as conn:
        conn.execute("DELETE FROM users")
    p.ok("snapshot", "restore", "before-cleanup")
    assert users(p) == EMAILS
    # --consume uses it up.
    out = p.ok("snapshot", "restore", "--consume", "before-cleanup")
    assert "it is used up" in out.stdout
    assert "before-cleanup" not in listed(p)

    p.ok("snapshot", "drop", kept)
    assert kept not in listed(p)
    assert sqlite_version(p.db_path) == {F1}


def test_restoring_a_branchs_snapshot_uses_it_up_unless_kept(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    p.ok("switch", "feature2")  # leaving feature1 drops users.email: its snapshot is kept
    key = next(k for k, s in listed(p).items() if s["branch"] == "feature1")
    out = p.ok("snapshot", "restore", "--keep", key)
    assert "it is kept" in out.stdout and listed(p)[key]["present"]
    assert users(p) == EMAILS
    out = p.ok("snapshot", "restore", key)
    assert "it is used up" in out.stdout and key not in listed(p)


def test_prune_drops_strays_and_keeps_named_saves(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    p.ok("switch", "feature2")  # leaving feature1 drops users.email: its snapshot is kept
    p.ok("snapshot", "save", "mine")
    keys = listed(p)
    feature1_key = next(k for k, s in keys.items() if s["branch"] == "feature1")
    assert keys[feature1_key]["restored_by"] == ["feature1"]
    # Restorable: plain prune keeps them, and says by which branch.
    dry = json.loads(p.ok("snapshot", "prune", "--dry-run", "--json").stdout)
    assert dry["dropped"] == []
    assert {s["key"]: s["restored_by"] for s in dry["kept_restorable"]} == {
        feature1_key: ["feature1"],
        "mine": ["feature2"],
    }
    p.ok("switch", "main")
    p.git("branch", "-q", "-D", "feature1", "feature2")
    snap = listed(p)[feature1_key]
    assert (snap["branch_exists"], snap["stray"], snap["restored_by"]) == (False, True, [])
    assert "stray: no checkout restores it" in p.ok("snapshot", "list").stdout
    assert f"snapshot restore {feature1_key}" in p.ok("status").stdout

    # Strays: plain prune names and drops them, but for a save made by name.
    dry = json.loads(p.ok("snapshot", "prune", "--dry-run", "--json").stdout)
    assert feature1_key in [s["key"] for s in dry["dropped"]]
    assert [s["key"] for s in dry["kept_saved"]] == ["mine"]
    assert feature1_key in listed(p)
    out = p.ok("snapshot", "prune")
    assert f"Dropped '{feature1_key}' (feature1: no checkout restores it)" in out.stdout
    assert "Kept 'mine' (feature2): saved by name" in out.stdout
    assert set(listed(p)) == {"mine"}
    p.ok("snapshot", "prune", "--keep", "0")
    assert listed(p) == {}
    assert "Nothing to prune." in p.ok("snapshot", "prune").stdout


def test_prune_keeps_what_a_renamed_or_derived_branch_restores(
    db_at_feature1_head_with_emails: Project,
) -> None:
    """Issue 24: a renamed branch, and a branch made from a deleted one, restore the
    snapshot: neither plain prune nor --keep/--older-than drop it without
    --include-restorable."""
    p = db_at_feature1_head_with_emails
    p.ok("switch", "feature2")
    f1 = next(k for k, s in listed(p).items() if s["branch"] == "feature1")
    p.git("branch", "-m", "feature1", "renamed1")
    assert listed(p)[f1]["restored_by"] == ["renamed1"]
    assert "restored by checking out 'renamed1'" in p.ok("status").stdout
    p.git("branch", "kid", "renamed1")
    p.git("branch", "-q", "-D", "renamed1")
    assert listed(p)[f1]["restored_by"] == ["kid"]

    for options in ([], ["--keep", "0"], ["--older-than", "0"]):
        out = p.ok("snapshot", "prune", *options)
        assert f"Kept '{f1}' (feature1): restored by checking out 'kid'" in out.stdout
        assert f1 in listed(p)
    dry = json.loads(p.ok("snapshot", "prune", "--keep", "0", "--dry-run", "--json").stdout)
    assert [(s["key"], s["restored_by"]) for s in dry["kept_restorable"]] == [(f1, ["kid"])]
    bad = p.branchmig("snapshot", "prune", "--include-restorable")
    assert bad.returncode == 2 and "--keep N or --older-than DAYS" in bad.stderr
    out = p.ok("snapshot", "prune", "--keep", "0", "--include-restorable")
    assert f"Dropped '{f1}' (feature1: restored by checking out 'kid')" in out.stdout
    assert f1 not in listed(p)


def test_prune_help_says_what_each_option_drops(db_at_main_head: Project) -> None:
    text = " ".join(db_at_main_head.ok("snapshot", "prune", "--help").stdout.split())
    assert "Without options: the strays" in text
    assert "never dropped unless --include-" in text and "except those saved by name" in text
    assert "Drop all but the N newest snapshots (restorable ones spared)" in text
    assert "Drop the snapshots older than DAYS (restorable ones spared)" in text


def test_snapshot_command_errors_are_one_line(db_at_feature1_head_with_emails: Project) -> None:
    p = db_at_feature1_head_with_emails
    missing = p.branchmig("snapshot", "restore", "nope")
    assert missing.returncode == 1
    assert (
        missing.stderr.strip()
        .splitlines()[-1]
        .startswith("branchmig: No snapshot 'nope' of this database")
    )
    bad = p.branchmig("snapshot", "save", "Not A Name")
    assert bad.returncode == 2
    assert "must be 1-40 of a-z, 0-9, '-' and '_'" in bad.stderr
    assert "Traceback" not in missing.stderr + bad.stderr


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ],
)
def test_snapshots_are_listed_and_restored_with_the_live_database_dropped(
    request: pytest.FixtureRequest, alembic_template: Path, tmp_path: Path, backend: str
) -> None:
    """The live database dropped on the server, its snapshots still there: ``snapshot
    list`` lists them and says the live one is missing; ``snapshot restore`` makes it
    again from the snapshot."""
    url = request.getfixturevalue(
        "fresh_postgres_url" if backend == "postgresql" else "fresh_mysql_url"
    )
    p = make_seed_project(alembic_template, tmp_path / "project", kind="alembic", url=url)
    p.ok("switch", "feature1")
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (name, email) VALUES ('ada', 'ada@example.com')"))
    engine.dispose()
    p.ok("switch", "feature2")  # feature1's rows kept for it
    live = make_url(url).database
    server = create_engine(
        make_url(url).set(database="postgres" if backend == "postgresql" else None),
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
    )
    with server.connect() as conn:
        quoted = f'"{live}"' if backend == "postgresql" else f"`{live}`"
        conn.execute(text(f"DROP DATABASE {quoted}"))
    server.dispose()

    proc = p.ok("snapshot", "list")
    assert "is missing" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    [key] = [k for k, s in listed(p).items() if s["branch"] == "feature1"]

    proc = p.ok("snapshot", "restore", key)
    assert "replaced is snapshot" not in proc.stdout, proc.stdout
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT email FROM users")).scalars().all() == ["ada@example.com"]
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == F1
    engine.dispose()
    assert not [s for s in listed(p).values() if s["purpose"] == "replaced"]
