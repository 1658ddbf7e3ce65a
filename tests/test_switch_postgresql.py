"""The seed scenario on a real PostgreSQL database: feature1's emails survive a round trip
(template-copy snapshots), a migration that raises after the revert phase committed still
leaves the database as it was, and sessions that block a snapshot are named."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from db_servers import postgres_connection
from e2e_projects import (
    BASE,
    BRANCHMIG,
    EMAILS,
    F1,
    F2,
    F2_SCRIPT,
    FAILPOINTS,
    Project,
    check_failing_rehearsal_touches_nothing,
    check_killed_switch_is_put_back,
    check_raising_switch_changes_nothing,
    check_stopped_switch_ends_before_or_after,
    make_seed_project,
    wait_for,
)
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.postgres

PASSWORD = "s3cret-pw"


def _state(url: str) -> dict[str, Any]:
    """Schema, data and alembic_version of the database: what "as before" compares."""
    with postgres_connection(url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
        ).fetchall()
        tables = {t for t, _, _ in columns}
        rows = {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall() for t in tables}
    return {"columns": columns, "rows": rows}


def _version(url: str) -> set[str]:
    with postgres_connection(url) as conn:
        return {r[0] for r in conn.execute("SELECT version_num FROM alembic_version")}


@pytest.fixture
def pg_db_at_feature1_with_emails(
    alembic_template: Path, tmp_path: Path, fresh_postgres_url: str
) -> Project:
    """The seed project on a new PostgreSQL database (its URL carrying a password the
    server accepts), switched to feature1, two users with emails."""
    url = make_url(fresh_postgres_url).set(password=PASSWORD).render_as_string(hide_password=False)
    p = make_seed_project(alembic_template, tmp_path / "project", kind="alembic", url=url)
    p.ok("sync")
    p.ok("switch", "feature1")
    with postgres_connection(url) as conn:
        conn.execute(
            "INSERT INTO users (name, email) VALUES ('ada', 'ada@example.com'), "
            "('bob', 'bob@example.com')"
        )
    return p


def _users(url: str) -> list[tuple[str, str]]:
    with postgres_connection(url) as conn:
        return [tuple(r) for r in conn.execute("SELECT name, email FROM users ORDER BY id")]


def test_postgres_round_trip_keeps_emails(pg_db_at_feature1_with_emails: Project) -> None:
    p = pg_db_at_feature1_with_emails
    out = p.ok("switch", "feature2")
    assert PASSWORD not in out.stdout + out.stderr
    assert "***" in out.stdout
    assert _version(p.url) == {F2}
    assert p.current().returncode == 0
    p.ok("install")
    out = p.checkout("feature1")  # through the hook: the snapshot comes back
    assert PASSWORD not in out.stdout + out.stderr
    assert _version(p.url) == {F1}
    assert _users(p.url) == EMAILS
    status = p.status()
    assert PASSWORD not in status["database"] and "***" in status["database"]
    p.ok("switch", "main")
    assert _version(p.url) == {BASE}
    p.ok("switch", "feature1")
    assert _users(p.url) == EMAILS


def test_postgres_raising_migration_leaves_the_database_as_before(
    pg_db_at_feature1_with_emails: Project,
) -> None:
    p = pg_db_at_feature1_with_emails
    # the revert of F1 commits before the upgrade fails: only the snapshot brings it back
    check_raising_switch_changes_nothing(
        p, lambda: _state(p.url), lambda: _version(p.url), secret=PASSWORD
    )


def test_a_held_session_blocks_the_snapshot_until_terminated(
    pg_db_at_feature1_with_emails: Project,
) -> None:
    p = pg_db_at_feature1_with_emails
    with postgres_connection(p.url) as held:
        pid = held.execute("SELECT pg_backend_pid()").fetchone()[0]
        proc = p.branchmig("switch", "feature2", "--json")
        assert proc.returncode == 1
        assert str(pid) in proc.stderr and "--terminate-connections" in proc.stderr
        assert "Traceback" not in proc.stderr
        facts = json.loads(proc.stdout)  # the sessions are a field, for machines
        assert (facts["cause"], facts["restored"]) == ("SessionsBlockingError", True)
        assert any(str(pid) in session for session in facts["sessions"]), facts
        assert p.branch() == "feature1"
        assert _version(p.url) == {F1}
        held.execute("SET application_name = 'held-by-test'")
        out = p.ok("switch", "feature2", "--terminate-connections")
        # The sessions it ends are named (issue 24).
        ended = next(line for line in out.stderr.splitlines() if "ended 1 session(s)" in line)
        assert f"pid {pid} (user postgres, held-by-test, from " in ended, out.stderr
    assert _version(p.url) == {F2}
    p.ok("switch", "feature1")
    assert _users(p.url) == EMAILS


def test_postgres_killed_switch_is_put_back_by_the_next_command(
    pg_db_at_feature1_with_emails: Project, tmp_path: Path
) -> None:
    p = pg_db_at_feature1_with_emails
    check_killed_switch_is_put_back(p, tmp_path / "sleeping", lambda: _state(p.url), "status")


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
        assert _version(p.url) == {F1}
        p.ok("sync", "--terminate-connections")
    assert _version(p.url) == {F2}
    with postgres_connection(p.url) as held:
        held.execute("SELECT 1")
        # The restore is blocked: no "keeping the database of 'feature2' as ..." when no
        # copy was made (issue 24).
        out = p.checkout("feature1")
        assert "Nothing was changed" in out.stderr, out.stderr
        assert "keeping the database" not in out.stderr and "kept the" not in out.stderr
        assert _version(p.url) == {F2}
    p.ok("sync")
    assert _users(p.url) == EMAILS


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
    before = _state(p.url)
    proc = subprocess.Popen(
        [BRANCHMIG, "switch", "feature2"],
        cwd=p.root,
        env=p.environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: marker.exists() or proc.poll() is not None)
    with postgres_connection(p.url) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr and "Nothing changed" in stderr, stderr
    assert _state(p.url) == before
    assert p.branch() == "feature1" and _version(p.url) == {F1}


@pytest.mark.parametrize("point", FAILPOINTS)
def test_a_switch_killed_at_any_point_ends_before_or_after_it(
    pg_db_at_feature1_with_emails: Project, point: str
) -> None:
    p = pg_db_at_feature1_with_emails
    check_stopped_switch_ends_before_or_after(p, point, "kill", lambda: _state(p.url))


def test_a_failing_rehearsal_touches_nothing(pg_db_at_feature1_with_emails: Project) -> None:
    p = pg_db_at_feature1_with_emails
    check_failing_rehearsal_touches_nothing(p, lambda: _state(p.url))


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
        assert _users(p.url) == EMAILS
    listed = json.loads(p.ok("snapshot", "list", "--json").stdout)["snapshots"]
    kept = [s for s in listed if s["key"] == "before-exp"]
    assert kept and kept[0]["present"] and kept[0]["size"] > 0
