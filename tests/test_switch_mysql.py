"""What only MariaDB/MySQL does to the seed scenario: an open transaction holds the table
swap up, and the views a branch made come back with its rows. The behaviours every
database shares (round trip, held session, failpoints...) are in test_switch_backends.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from backends import MARIADB, PASSWORD, seed_project_at_feature1_with_emails
from db_servers import mysql_connection
from e2e_projects import (
    EMAILS,
    F1,
    Project,
    script,
)
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.mysql


@pytest.fixture
def mysql_db_at_feature1_with_emails(
    request: pytest.FixtureRequest, alembic_template: Path, tmp_path: Path
) -> Project:
    """The seed project on a new MariaDB database, as a user with a password, switched to
    feature1, two users with emails."""
    return seed_project_at_feature1_with_emails(
        MARIADB, request, alembic_template, tmp_path / "project"
    )


def test_mysql_held_transaction_blocking_the_restore_is_named_until_terminated(
    mysql_db_at_feature1_with_emails: Project,
) -> None:
    p = mysql_db_at_feature1_with_emails
    p.ok("switch", "feature2")
    before = MARIADB.state(p)
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
        assert MARIADB.state(p) == before
        p.ok("switch", "feature1", "--terminate-connections")
    assert MARIADB.version(p) == {F1}
    assert MARIADB.users(p) == EMAILS


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
    assert MARIADB.query(p, "SHOW FULL TABLES WHERE Table_type = 'VIEW'") == []

    p.ok("switch", "feature1")

    assert MARIADB.version(p) == {"f1b0000000aa"}
    assert MARIADB.query(p, "SELECT name, email FROM user_emails ORDER BY name") == EMAILS
