"""The seed scenario on a real MariaDB/MySQL database: feature1's emails survive a round
trip, and a migration that raises mid-switch (MySQL's DDL is not transactional: the table
it created stays) leaves the database as it was."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from db_servers import mysql_connection
from e2e_projects import (
    BASE,
    EMAILS,
    F1,
    F2,
    FAILPOINTS,
    Project,
    check_failing_rehearsal_touches_nothing,
    check_killed_switch_is_put_back,
    check_raising_switch_changes_nothing,
    check_stopped_switch_ends_before_or_after,
    make_seed_project,
    script,
)
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.mysql

PASSWORD = "s3cret-pw"


@pytest.fixture
def mysql_url_with_password(fresh_mysql_url: str, mysql_server_url: str) -> Iterator[str]:
    """``fresh_mysql_url`` as a user of its own with a password, allowed on the test
    databases (and their snapshots) only."""
    user = f"bm_u_{uuid.uuid4().hex[:8]}"
    with mysql_connection(mysql_server_url) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'")
        # The test database and everything branchmig names after it (snapshots, the
        # scratch copy of a restore).
        cur.execute(f"GRANT ALL PRIVILEGES ON `bm\\_test\\_%`.* TO '{user}'@'127.0.0.1'")
    try:
        yield (
            make_url(fresh_mysql_url)
            .set(username=user, password=PASSWORD)
            .render_as_string(hide_password=False)
        )
    finally:
        with mysql_connection(mysql_server_url) as conn, conn.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")


def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    with mysql_connection(url, database=make_url(url).database) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return [tuple(r) for r in cur.fetchall()]


def _state(url: str) -> dict[str, Any]:
    name = make_url(url).database
    columns = _query(
        url,
        "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE FROM "
        f"information_schema.COLUMNS WHERE TABLE_SCHEMA = '{name}' "
        "ORDER BY TABLE_NAME, ORDINAL_POSITION",
    )
    tables = {t for t, _, _ in columns}
    return {
        "columns": columns,
        "rows": {t: _query(url, f"SELECT * FROM `{t}` ORDER BY 1") for t in tables},
    }


def _version(url: str) -> set[str]:
    return {r[0] for r in _query(url, "SELECT version_num FROM alembic_version")}


@pytest.fixture
def mysql_db_at_feature1_with_emails(
    alembic_template: Path, tmp_path: Path, mysql_url_with_password: str
) -> Project:
    url = mysql_url_with_password
    p = make_seed_project(alembic_template, tmp_path / "project", kind="alembic", url=url)
    p.ok("sync")
    p.ok("switch", "feature1")
    _query(
        url,
        "INSERT INTO users (name, email) VALUES ('ada', 'ada@example.com'), "
        "('bob', 'bob@example.com')",
    )
    return p


def _users(url: str) -> list[tuple[Any, ...]]:
    return _query(url, "SELECT name, email FROM users ORDER BY id")


def test_mysql_round_trip_keeps_emails(mysql_db_at_feature1_with_emails: Project) -> None:
    p = mysql_db_at_feature1_with_emails
    # An app's idle pooled connection, open the whole time: tables are found by name, so
    # it sees each swapped-in table (only an open transaction holds the swap up).
    with mysql_connection(p.url, database=make_url(p.url).database) as app, app.cursor() as cur:
        out = p.ok("switch", "feature2")
        assert PASSWORD not in out.stdout + out.stderr and "***" in out.stdout
        assert _version(p.url) == {F2}
        assert p.current().returncode == 0
        p.ok("install")
        out = p.checkout("feature1")  # through the hook
        assert PASSWORD not in out.stdout + out.stderr
        assert _version(p.url) == {F1}
        assert _users(p.url) == EMAILS
        cur.execute("SELECT name, email FROM users ORDER BY id")
        assert [tuple(row) for row in cur.fetchall()] == EMAILS
        p.ok("switch", "main")
        assert _version(p.url) == {BASE}
        p.ok("switch", "feature1")
        assert _users(p.url) == EMAILS
        cur.execute("SELECT name, email FROM users ORDER BY id")
        assert [tuple(row) for row in cur.fetchall()] == EMAILS


def test_mysql_raising_migration_leaves_the_database_as_before(
    mysql_db_at_feature1_with_emails: Project,
) -> None:
    p = mysql_db_at_feature1_with_emails
    # the revert of F1 commits before the upgrade fails: only the snapshot brings it back
    check_raising_switch_changes_nothing(
        p, lambda: _state(p.url), lambda: _version(p.url), secret=PASSWORD
    )


def test_mysql_killed_switch_is_put_back_by_the_next_command(
    mysql_db_at_feature1_with_emails: Project, tmp_path: Path
) -> None:
    p = mysql_db_at_feature1_with_emails
    check_killed_switch_is_put_back(p, tmp_path / "sleeping", lambda: _state(p.url), "sync")


def test_mysql_held_transaction_blocking_the_restore_is_named_until_terminated(
    mysql_db_at_feature1_with_emails: Project,
) -> None:
    p = mysql_db_at_feature1_with_emails
    p.ok("switch", "feature2")
    before = _state(p.url)
    with mysql_connection(p.url, database=make_url(p.url).database) as held, held.cursor() as cur:
        cur.execute("SELECT CONNECTION_ID()")
        session = cur.fetchone()[0]
        cur.execute("BEGIN")
        cur.execute("SELECT * FROM users")  # an app's open transaction: RENAME waits for it
        proc = p.branchmig("switch", "feature1")
        assert proc.returncode == 1, proc.stdout
        assert str(session) in proc.stderr and "--terminate-connections" in proc.stderr
        assert "Traceback" not in proc.stderr and PASSWORD not in proc.stderr
        assert p.branch() == "feature2"
        assert _state(p.url) == before
        p.ok("switch", "feature1", "--terminate-connections")
    assert _version(p.url) == {F1}
    assert _users(p.url) == EMAILS


def test_mysql_round_trip_brings_back_the_view_a_branch_made(
    mysql_db_at_feature1_with_emails: Project,
) -> None:
    p = mysql_db_at_feature1_with_emails
    p.write(
        "f1b0000000aa_view.py",
        script(
            "f1b0000000aa",
            F1,
            '    op.execute("CREATE VIEW user_emails AS SELECT name, email FROM users")',
            '    op.execute("DROP VIEW user_emails")',
        ),
    )
    p.commit("feature1: a view of the emails")
    p.ok("sync")
    p.ok("switch", "feature2")  # its downgrade drops the view
    assert _query(p.url, "SHOW FULL TABLES WHERE Table_type = 'VIEW'") == []

    p.ok("switch", "feature1")

    assert _version(p.url) == {"f1b0000000aa"}
    assert _query(p.url, "SELECT name, email FROM user_emails ORDER BY name") == EMAILS


@pytest.mark.parametrize("point", FAILPOINTS)
def test_a_switch_killed_at_any_point_ends_before_or_after_it(
    mysql_db_at_feature1_with_emails: Project, point: str
) -> None:
    p = mysql_db_at_feature1_with_emails
    check_stopped_switch_ends_before_or_after(p, point, "kill", lambda: _state(p.url))


def test_a_failing_rehearsal_touches_nothing(mysql_db_at_feature1_with_emails: Project) -> None:
    p = mysql_db_at_feature1_with_emails
    check_failing_rehearsal_touches_nothing(p, lambda: _state(p.url))
