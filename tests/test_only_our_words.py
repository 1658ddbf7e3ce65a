"""Only branchmig's words on the terminal (issue 20, item 8): Python warnings raised by
the project's env.py, Alembic or SQLAlchemy are shown with ``-v`` only; the SQLite
batch-mode warning appears only for a SQLite database and an operation SQLite cannot do
in place, and a failure's fix names its real cause."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from e2e_projects import F1, F2, F2_SCRIPT, Project, make_seed_project, script
from sqlalchemy.engine import make_url

AUTOINCREMENT = "autoincrement and existing_autoincrement only make sense for MySQL"

NOISY_ENV = (
    "import warnings\n\n"
    f"warnings.warn({AUTOINCREMENT!r}, UserWarning)\n\n\n"
    "async def _never_awaited() -> None:\n    pass\n\n\n"
    "_never_awaited()  # an async env.py's slip: RuntimeWarning when collected\n"
)


def _noisy_env_on_both_features(p: Project) -> None:
    """env.py warns (a UserWarning, a coroutine never awaited) each time it runs, on
    feature1 and feature2 alike; feature1 checked out."""
    env = p.root / "alembic" / "env.py"
    env.write_text(NOISY_ENV + env.read_text())
    p.commit("env.py: noisy")
    p.git("checkout", "-q", "feature2")
    p.git("checkout", "feature1", "--", "alembic/env.py")
    p.commit("env.py: noisy")
    p.git("checkout", "-q", "feature1")


def test_warnings_raised_in_env_py_are_shown_only_with_v(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    _noisy_env_on_both_features(p)
    quiet = p.ok("switch", "feature2")
    assert AUTOINCREMENT not in quiet.stderr, quiet.stderr
    assert "never awaited" not in quiet.stderr and "Warning" not in quiet.stderr
    told = p.ok("-v", "switch", "feature1", "--no-snapshot")  # env.py runs
    assert f"UserWarning: {AUTOINCREMENT}" in told.stderr, told.stderr
    assert "coroutine '_never_awaited' was never awaited" in told.stderr, told.stderr


F2_AUTOINCREMENT = F2_SCRIPT.replace(
    '                    sa.Column("title", sa.String(100)))',
    '                    sa.Column("title", sa.String(100)))\n'
    '    op.alter_column("posts", "title", existing_type=sa.String(100), autoincrement=False)',
)


@pytest.mark.postgres
def test_alembics_autoincrement_warning_on_postgresql_only_with_v(
    alembic_template: Path, tmp_path: Path, fresh_postgres_url: str
) -> None:
    url = make_url(fresh_postgres_url).render_as_string(hide_password=False)
    p = make_seed_project(alembic_template, tmp_path / "project", kind="alembic", url=url)
    p.git("checkout", "-q", "feature2")
    p.write(f"{F2}_posts.py", F2_AUTOINCREMENT)
    p.commit("feature2: posts.title, autoincrement said")
    p.git("checkout", "-q", "main")
    p.ok("sync")
    quiet = p.ok("switch", "feature2")
    assert AUTOINCREMENT not in quiet.stderr and "Warning" not in quiet.stderr, quiet.stderr
    p.ok("switch", "main", "--no-snapshot")
    told = p.ok("-v", "switch", "feature2", "--no-snapshot")
    assert f"UserWarning: {AUTOINCREMENT}" in told.stderr, told.stderr


# -- the SQLite batch-mode warning ------------------------------------------------------------

F1B = "f1b000000002"


def _feature1_adds_phone(p: Project, *, upgrade_extra: str = "", downgrade: str) -> str:
    """feature1 gains F1B: ``users.phone`` (with ``upgrade_extra``), and ``downgrade``;
    returns the script's path."""
    p.write(
        f"{F1B}_phone.py",
        script(
            F1B,
            F1,
            '    op.add_column("users", sa.Column("phone", sa.String(20), nullable=True))'
            + upgrade_extra,
            downgrade,
        ),
    )
    p.commit("feature1: users.phone")
    return f"alembic/versions/{F1B}_phone.py"


def _line(p: Project, path: str, text: str) -> int:
    return next(n for n, ln in enumerate((p.root / path).read_text().splitlines(), 1) if text in ln)


INDEX_PHONE = '\n    op.create_index("ix_users_phone", "users", ["phone"])'
DROP_PHONE = '    op.drop_column("users", "phone")'


@pytest.mark.postgres
def test_no_sqlite_warning_for_a_postgresql_project(
    alembic_template: Path, tmp_path: Path, fresh_postgres_url: str
) -> None:
    url = make_url(fresh_postgres_url).render_as_string(hide_password=False)
    p = make_seed_project(alembic_template, tmp_path / "project", kind="alembic", url=url)
    p.git("checkout", "-q", "feature1")
    _feature1_adds_phone(p, upgrade_extra=INDEX_PHONE, downgrade=DROP_PHONE)
    check = p.ok("check", "--against", "main")
    plan = p.ok("plan", ".", "main")
    assert "SQLite" not in check.stderr + plan.stderr, check.stderr + plan.stderr
    p.ok("sync")
    moved = p.ok("switch", "main")  # PostgreSQL drops an indexed column in place
    assert "SQLite" not in moved.stderr, moved.stderr


def test_a_plain_column_sqlite_drops_in_place_is_not_warned_about(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    _feature1_adds_phone(p, downgrade=DROP_PHONE)
    assert "SQLite" not in p.ok("check", "--against", "main").stderr
    assert "SQLite" not in p.ok("plan", ".", "main").stderr
    p.ok("sync")
    moved = p.ok("switch", "main")
    assert "SQLite" not in moved.stderr, moved.stderr


def test_an_index_only_the_database_knows_is_warned_about_before_the_switch(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    path = _feature1_adds_phone(p, downgrade=DROP_PHONE)
    p.ok("sync")
    with sqlite3.connect(p.db_path) as conn:  # made by hand: no script says so
        conn.execute("CREATE INDEX ix_by_hand ON users (phone)")
    assert "SQLite" not in p.ok("plan", ".", "main").stderr  # the scripts say nothing
    moved = p.branchmig("switch", "main")
    assert moved.returncode == 1
    said = (
        f"revision '{F1B}' ({path}, line {_line(p, path, DROP_PHONE)}) runs "
        "op.drop_column('users', 'phone') outside "
        "batch mode: the column is indexed (ix_by_hand), which SQLite cannot drop in place"
    )
    assert f"branchmig: warning: on SQLite, {said}" in moved.stderr, moved.stderr
    assert f"To fix it: {said}" in moved.stderr.strip().splitlines()[-1], moved.stderr


def test_a_failing_comment_change_is_blamed_on_the_comment(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    path = _feature1_adds_phone(
        p,
        downgrade='    op.alter_column("users", "phone", comment=None, existing_type=sa.String(20),'
        ' existing_comment="the phone")\n' + DROP_PHONE,
    )
    p.ok("sync")
    check = p.ok("check", "--against", "main")
    said = (
        f"revision '{F1B}' ({path}, line {_line(p, path, 'op.alter_column')}) runs "
        "op.alter_column('users', 'phone') outside "
        "batch mode: SQLite has no column comments, so Alembic cannot render the comment "
        "change. In its downgrade, write `with op.batch_alter_table('users') as batch: "
        "batch.alter_column('phone', ...)`"
    )
    assert f"warning: on SQLite, {said}" in check.stderr, check.stderr
    plan = json.loads(p.ok("plan", ".", "main", "--json").stdout)
    assert plan["batch_needed"] == [  # the plain column's drop is not among them
        {
            "revision": F1B,
            "operation": "alter_column",
            "target": "users.phone",
            "line": _line(p, path, "op.alter_column"),
            "reason": "SQLite has no column comments, so Alembic cannot render the comment change",
        }
    ]
    moved = p.branchmig("switch", "main")
    assert moved.returncode == 1
    last = moved.stderr.strip().splitlines()[-1]
    assert "can't render element of type" in last and f"To fix it: {said}" in last, last
    assert "indexed" not in last and "constrained" not in last


def test_what_sqlite_cannot_do_in_place_is_read_from_the_scripts() -> None:
    from branchmig.downgrades import constrained_columns, find_unbatched, sqlite_refuses

    earlier = [
        script(
            "a1",
            None,
            '    op.create_table("users", sa.Column("id", sa.Integer, primary_key=True),\n'
            '        sa.Column("name", sa.String(50), unique=True),\n'
            '        sa.Column("org", sa.Integer, sa.ForeignKey("orgs.id")),\n'
            '        sa.Column("plain", sa.String(5)))\n'
            '    op.create_index("ix_users_plain", "users", ["plain"])\n'
            '    with op.batch_alter_table("users") as batch:\n'
            '        batch.create_unique_constraint("uq_code", ["code"])',
            "    pass",
        ).encode(),
        script("a2", "a1", '    op.drop_index("ix_users_plain", "users")', "    pass").encode(),
    ]
    assert constrained_columns(earlier) == {
        "users.id": ["the PRIMARY KEY"],
        "users.name": ["UNIQUE"],
        "users.org": ["in a FOREIGN KEY constraint"],
        "users.code": ["UNIQUE"],
    }
    drops = find_unbatched(
        script(
            "a3",
            "a2",
            "    pass",
            '    op.drop_column("users", "plain")\n    op.drop_column("users", "name")\n'
            '    op.alter_column("users", "name", new_column_name="nom")',
        ).encode(),
        "a3",
    )
    assert [d.target for d in drops] == ["users.plain", "users.name"]  # a rename is in place
    facts = constrained_columns(earlier)
    refused = sqlite_refuses(drops, facts, sqlite_version=(3, 45, 0))
    assert [(d.target, d.reason) for d in refused] == [
        ("users.name", "the column is UNIQUE, which SQLite cannot drop in place")
    ]
    old = sqlite_refuses(drops, facts, sqlite_version=(3, 31, 1))
    assert [d.target for d in old] == ["users.plain", "users.name"]
    assert all(d.reason.startswith("SQLite 3.31.1 cannot drop a column") for d in old)
