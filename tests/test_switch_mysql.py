"""What only MariaDB/MySQL does to the seed scenario: an open transaction holds the table
swap up, and the views a branch made come back with its rows. The behaviours every
database shares (round trip, held session, failpoints...) are in test_switch_backends.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from backends import MARIADB, PASSWORD, seed_project_at_feature1_with_emails
from db_servers import mysql_connection, new_mysql_database
from e2e_projects import (
    EMAILS,
    F1,
    Project,
    make_seed_project,
    script,
    wait_for,
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
    mysql_server_url: str,
    alembic_template: Path,
    tmp_path: Path,
) -> None:
    """An app's open transaction holds the restore's RENAME up: the switch waits, then
    names the session and changes nothing, until ``--terminate-connections``. While it
    waits, another project's switch on another database of the server goes through."""
    p = mysql_db_at_feature1_with_emails
    p.ok("switch", "feature2")
    before = MARIADB.state(p)
    database = make_url(p.url).database
    with (
        new_mysql_database(mysql_server_url) as other_url,
        mysql_connection(p.url, database=database) as held,
        held.cursor() as cur,
        mysql_connection(mysql_server_url) as watch,
        watch.cursor() as looking,
    ):
        other = make_seed_project(
            alembic_template, tmp_path / "other", kind="alembic", url=other_url
        )
        other.ok("switch", "feature1")
        other.ok("switch", "feature2")

        def renaming() -> bool:
            looking.execute(
                "SELECT 1 FROM information_schema.PROCESSLIST "
                "WHERE INFO LIKE 'RENAME TABLE%%' AND INFO LIKE %s",
                (f"%`{database}`%",),
            )
            return looking.fetchone() is not None

        cur.execute("SELECT CONNECTION_ID()")
        session = cur.fetchone()[0]
        cur.execute("BEGIN")
        cur.execute("SELECT * FROM users")  # an app's open transaction: RENAME waits for it
        waiting = p.start("switch", "feature1")
        try:
            wait_for(renaming)
            other.ok("switch", "feature1")  # reads its own database's objects only
            assert renaming(), "the held restore gave up before the other switch ended"
            assert MARIADB.version(other) == {F1}
        finally:
            _, err = waiting.communicate(timeout=60)
        assert waiting.returncode == 1, err
        assert str(session) in err and "--terminate-connections" in err
        assert "Traceback" not in err and PASSWORD not in err
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
