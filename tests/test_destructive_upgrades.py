"""Issue 20, items 1 and 5, on SQLite, PostgreSQL and MariaDB, ridden by the installed hook
(``git checkout``) and by ``branchmig switch``: an upgrade that drops a column and rewrites
values does not take the left branch's rows with it, and rows carried forward by an
upgrade-only move come back after a third branch was visited.

The seed project: main has ``users``; ``feature1`` (here *old*) adds ``users.email``.
*dropper* (on feature1) drops ``users.email`` and rewrites every name in its upgrade, and
re-adds the column empty in its downgrade, as real projects write it. *mid* (on
feature1) and *new* (on mid) each add a table: moving old → mid → new only upgrades."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_projects import EMAILS, F1, Project, make_seed_project, script
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("mysql", marks=pytest.mark.mysql),
]

DROPS = "d20000000001"
MID = "m20000000001"
NEW = "n20000000001"

DROPPER = script(
    DROPS,
    F1,
    '    with op.batch_alter_table("users") as batch:\n'
    '        batch.drop_column("email")\n'
    '    op.execute("UPDATE users SET name = upper(name)")',
    '    op.add_column("users", sa.Column("email", sa.String(100), nullable=True))',
)


def _table(rev: str, down: str, table: str) -> str:
    return script(
        rev,
        down,
        f'    op.create_table("{table}", sa.Column("id", sa.Integer, primary_key=True))',
        f'    op.drop_table("{table}")',
    )


@pytest.fixture(params=BACKENDS)
def old_with_emails(request: pytest.FixtureRequest, alembic_template: Path, tmp_path: Path) -> Any:
    """The seed project on the parametrised backend, with dropper, mid and new
    committed; feature1 (old) checked out by ``switch``, hooks installed, two users."""
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("fresh_postgres_url")
    elif request.param == "mysql":
        url = request.getfixturevalue("fresh_mysql_url")
    p = make_seed_project(alembic_template, tmp_path / "project", kind="alembic", url=url)
    for name, start, files in (
        ("dropper", "feature1", {f"{DROPS}_drop_email.py": DROPPER}),
        ("mid", "feature1", {f"{MID}_notes.py": _table(MID, F1, "notes")}),
        ("new", "mid", {f"{NEW}_tags.py": _table(NEW, MID, "tags")}),
    ):
        p.git("checkout", "-q", "-b", name, start)
        for filename, body in files.items():
            p.write(filename, body)
        p.commit(f"{name}: migrations")
    p.git("checkout", "-q", "main")
    p.ok("sync")
    p.ok("switch", "feature1")
    p.ok("install")
    execute(p, "INSERT INTO users (name, email) VALUES ('ada', 'ada@example.com')")
    execute(p, "INSERT INTO users (name, email) VALUES ('bob', 'bob@example.com')")
    return p


def _url(p: Project) -> str:
    return f"sqlite:///{p.db_path}" if p.url.startswith("sqlite") else p.url


def execute(p: Project, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(_url(p), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql))
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def users(p: Project) -> list[tuple[Any, ...]]:
    return execute(p, "SELECT name, email FROM users ORDER BY id")


def mover(p: Project, how: str) -> Callable[[str], str]:
    """Check out a branch through the installed hook, or with ``branchmig switch``: what
    branchmig said."""

    def move(branch: str) -> str:
        proc = p.checkout(branch) if how == "hook" else p.ok("switch", branch)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert p.branch() == branch
        return proc.stdout + proc.stderr

    return move


@pytest.mark.parametrize("how", ["hook", "switch"])
def test_an_upgrade_that_drops_and_rewrites_loses_nothing_of_the_branch_left(
    old_with_emails: Project, how: str
) -> None:
    p = old_with_emails
    move = mover(p, how)
    move("dropper")
    assert users_on_dropper(p) == [("ADA",), ("BOB",)]
    move("feature1")
    assert users(p) == EMAILS
    plan = json.loads(p.ok("plan", "feature1", "dropper", "--json").stdout)
    assert plan["downgrade"] == [] and plan["upgrade"] == [DROPS]
    assert [(d["operation"], d["target"], d["direction"]) for d in plan["destructive"]] == [
        ("drop_column", "users.email", "upgrade"),
        ("execute", "UPDATE users SET name = upper(name)", "upgrade"),
    ]


def users_on_dropper(p: Project) -> list[tuple[Any, ...]]:
    return execute(p, "SELECT name FROM users ORDER BY id")


@pytest.mark.parametrize("how", ["hook", "switch"])
def test_rows_carried_forward_come_back_after_a_third_branch(
    old_with_emails: Project, how: str
) -> None:
    """At old insert a row; old → mid (an upgrade only: the row travels into mid's
    database) → new (new's snapshot restored) → old: the row is there."""
    p = old_with_emails
    move = mover(p, how)
    move("new")  # new gets a snapshot of its own when it is left
    move("feature1")
    execute(p, "INSERT INTO users (name, email) VALUES ('cy', 'cy@example.com')")
    expected = [*EMAILS, ("cy", "cy@example.com")]
    move("mid")
    move("new")
    assert users(p) == EMAILS  # new's own rows, from its snapshot
    move("feature1")
    assert users(p) == expected
