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
    assert kept.startswith("replaced-")
    after = listed(p)
    assert "before-cleanup" not in after  # a restore consumes the snapshot
    assert after[kept]["purpose"] == "replaced"  # what it replaced is kept

    p.ok("snapshot", "drop", kept)
    assert kept not in listed(p)
    assert sqlite_version(p.db_path) == {F1}


def test_prune_keeps_a_deleted_branchs_snapshot_until_told(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    p.ok("switch", "feature2")  # leaving feature1 drops users.email: its snapshot is kept
    p.ok("snapshot", "save", "mine")
    keys = listed(p)
    feature1_key = next(k for k, s in keys.items() if s["branch"] == "feature1")
    assert keys[feature1_key]["restored_by"] == ["feature1"]
    p.git("branch", "-q", "-D", "feature1")
    snap = listed(p)[feature1_key]
    assert (snap["branch_exists"], snap["stray"], snap["restored_by"]) == (False, True, [])
    assert "stray: no checkout restores it" in p.ok("snapshot", "list").stdout
    assert f"snapshot restore {feature1_key}" in p.ok("status").stdout

    # Its rows are nowhere else: prune names it and keeps it...
    dry = json.loads(p.ok("snapshot", "prune", "--dry-run", "--json").stdout)
    assert dry["dropped"] == []
    assert [s["key"] for s in dry["kept_strays"]] == [feature1_key]
    out = p.ok("snapshot", "prune")
    assert "Nothing to prune." in out.stdout
    assert f"Kept '{feature1_key}'" in out.stderr and "--strays" in out.stderr
    assert feature1_key in listed(p)
    # ...until told to drop strays too.
    out = p.ok("snapshot", "prune", "--strays")
    assert f"Dropped '{feature1_key}'" in out.stdout
    assert set(listed(p)) == {"mine"}
    p.ok("snapshot", "prune", "--keep", "0")
    assert listed(p) == {}
    assert "Nothing to prune." in p.ok("snapshot", "prune").stdout


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
