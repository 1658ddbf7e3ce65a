"""What only PostgreSQL does to the seed scenario: sessions that block the hook's snapshot,
a connection terminated mid-migration, a save point restored twice. The behaviours every
database shares (round trip, held session, failpoints...) are in test_switch_backends.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from backends import POSTGRESQL, seed_project_at_feature1_with_emails
from db_servers import postgres_connection
from e2e_projects import (
    EMAILS,
    F1,
    F2,
    F2_SCRIPT,
    Project,
    wait_for,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_db_at_feature1_with_emails(
    request: pytest.FixtureRequest, alembic_template: Path, tmp_path: Path
) -> Project:
    """The seed project on a new PostgreSQL database (its URL carrying a password the
    server accepts), switched to feature1, two users with emails."""
    return seed_project_at_feature1_with_emails(
        POSTGRESQL, request, alembic_template, tmp_path / "project"
    )


def test_a_hook_blocked_by_a_session_then_sync_keeps_the_rows(
    pg_db_at_feature1_with_emails: Project,
) -> None:
    """The hook cannot save (an app holds a session) and says what to run; that sync,
    then the checkout back, brings feature1's rows back (they used to land in a shared
    'detached' snapshot nothing restored)."""
    p = pg_db_at_feature1_with_emails
    p.ok("install")
    with postgres_connection(p.url) as held:
        held.execute("SELECT 1")
        out = p.checkout("feature2")
        assert "run: branchmig sync --terminate-connections" in out.stderr, out.stderr
        assert "or pass" not in out.stderr and "Traceback" not in out.stderr
        assert POSTGRESQL.version(p) == {F1}
        p.ok("sync", "--terminate-connections")
    assert POSTGRESQL.version(p) == {F2}
    with postgres_connection(p.url) as held:
        held.execute("SELECT 1")
        # The restore is blocked: no "keeping the database of 'feature2' as ..." when no
        # copy was made (issue 24).
        out = p.checkout("feature1")
        assert "Nothing was changed" in out.stderr, out.stderr
        assert "keeping the database" not in out.stderr and "kept the" not in out.stderr
        assert POSTGRESQL.version(p) == {F2}
    p.ok("sync")
    assert POSTGRESQL.users(p) == EMAILS


def test_a_connection_terminated_mid_migration_leaves_the_database_as_before(
    pg_db_at_feature1_with_emails: Project, tmp_path: Path
) -> None:
    p = pg_db_at_feature1_with_emails
    marker = tmp_path / "migrating"
    p.git("checkout", "-q", "feature2")
    p.write(
        f"{F2}_posts.py",
        F2_SCRIPT.replace(
            '                    sa.Column("title", sa.String(100)))',
            '                    sa.Column("title", sa.String(100)))\n'
            f'    open({str(marker)!r}, "w").close()\n'
            "    import time; time.sleep(3)\n"
            '    op.execute("SELECT 1")',
        ),
    )
    p.commit("feature2: slow posts")
    p.git("checkout", "-q", "feature1")
    before = POSTGRESQL.state(p)
    proc = p.start("switch", "feature2")
    wait_for(lambda: marker.exists() or proc.poll() is not None)
    with postgres_connection(p.url) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr and "Nothing changed" in stderr, stderr
    assert POSTGRESQL.state(p) == before
    assert p.branch() == "feature1" and POSTGRESQL.version(p) == {F1}


def test_a_save_point_made_by_name_can_be_restored_twice(
    pg_db_at_feature1_with_emails: Project,
) -> None:
    """Issue 24: restore used NAME up (the rename is the restore); now it saves it again."""
    p = pg_db_at_feature1_with_emails
    p.ok("snapshot", "save", "before-exp")
    for _ in range(2):
        with postgres_connection(p.url) as conn:
            conn.execute("DELETE FROM users")
        out = p.ok("snapshot", "restore", "before-exp")
        assert "it is kept" in out.stdout
        assert POSTGRESQL.users(p) == EMAILS
    listed = json.loads(p.ok("snapshot", "list", "--json").stdout)["snapshots"]
    kept = [s for s in listed if s["key"] == "before-exp"]
    assert kept and kept[0]["present"] and kept[0]["size"] > 0
