"""The behaviours of a move, written once and run on SQLite, PostgreSQL and MariaDB: the
round trip (by ``switch`` and through the hook), a session held open during it, a switch
stopped at each failpoint or killed mid-migration, a migration that raises, a rehearsal
that fails. What only one database does stays in test_switch_<database>.py."""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path

import pytest
from backends import MARIADB, PASSWORD, POSTGRESQL, SQLITE, Backend
from e2e_projects import (
    BASE,
    EMAILS,
    F1,
    F1B,
    F2,
    F2_SCRIPT,
    FAILPOINTS,
    Project,
    check_failing_rehearsal_touches_nothing,
    commit_raising_feature2,
    commit_slow_feature2,
    feature1_gains_phone,
    kill_mid_switch,
)


def said(proc: subprocess.CompletedProcess[str]) -> str:
    """All a command printed, which must hold no password and no traceback."""
    text = proc.stdout + proc.stderr
    assert PASSWORD not in text and "Traceback" not in text, text
    return text


USERS = "SELECT name, email FROM users ORDER BY id"


def test_a_round_trip_brings_feature1s_rows_back(
    backend: Backend, project_at_feature1_with_emails: Project
) -> None:
    """With the hook installed: feature2 by ``branchmig switch``, feature1 by ``git
    checkout`` through the hook, main through the hook, feature1 by switch. Each way saves
    and each way restores; feature1's rows come back each time, an app's idle session
    (where it does not block the snapshot) reads them, and no output shows the password."""
    p, b = project_at_feature1_with_emails, backend
    p.ok("install")
    with contextlib.ExitStack() as stack:
        held = None if b.idle_session_blocks else stack.enter_context(b.session(p))
        proc = p.ok("switch", "feature2")
        said(proc)
        assert "Saved the database as snapshot" in proc.stdout
        assert b.on_server == ("***" in proc.stdout), proc.stdout  # the URL, masked
        assert p.branch() == "feature2" and b.version(p) == {F2}
        assert "email" not in b.columns(p, "users") and "posts" in b.tables(p)
        # Alembic's own `current` finds every revision (no "Can't locate revision").
        assert F2 in p.current().stdout

        out = said(p.checkout("feature1"))
        assert "restored the snapshot of 'feature1'" in out, out
        assert p.branch() == "feature1" and b.version(p) == {F1}
        assert "posts" not in b.tables(p) and b.users(p) == EMAILS
        assert held is None or held.query(USERS) == EMAILS
        assert F1 in p.current().stdout
        database = p.status()["database"]
        assert PASSWORD not in database and b.on_server == ("***" in database)

        out = said(p.checkout("main"))
        assert "saving the database of 'feature1'" in out, out
        assert b.version(p) == {BASE}
        p.current()
        proc = p.ok("switch", "feature1")
        said(proc)
        assert "Restored snapshot" in proc.stdout
        assert b.version(p) == {F1} and b.users(p) == EMAILS
        assert held is None or held.query(USERS) == EMAILS


def test_a_session_held_open_during_a_move(
    backend: Backend, project_at_feature1_with_emails: Project
) -> None:
    """An app's idle session on the database: SQLite's restore writes into the open file
    and MariaDB swaps the tables under it, so the session reads feature1's rows again;
    PostgreSQL's copies need the database to themselves, so the switch names the session
    and changes nothing until ``--terminate-connections`` ends it."""
    p, b = project_at_feature1_with_emails, backend
    with b.session(p) as held:
        assert held.query(USERS) == EMAILS
        before = b.state(p)
        proc = p.branchmig("switch", "feature2", "--json")
        said(proc)
        if b.idle_session_blocks:
            assert proc.returncode == 1 and "--terminate-connections" in proc.stderr
            assert held.ident in proc.stderr, proc.stderr
            facts = json.loads(proc.stdout)  # the sessions are a field, for machines
            assert (facts["cause"], facts["restored"]) == ("SessionsBlockingError", True)
            assert any(held.ident in session for session in facts["sessions"]), facts
            assert p.branch() == "feature1" and b.state(p) == before
            out = said(p.ok("switch", "feature2", "--terminate-connections"))
            # The sessions it ends are named (issue 24).
            ended = next(line for line in out.splitlines() if "ended 1 session(s)" in line)
            assert held.named in ended, out
            assert b.version(p) == {F2}
            p.ok("switch", "feature1")
        else:
            assert proc.returncode == 0, proc.stderr
            assert b.version(p) == {F2}
            p.ok("switch", "feature1")
            assert held.query(USERS) == EMAILS  # the open session sees the restored rows
    assert b.version(p) == {F1} and b.users(p) == EMAILS


# Killed, each database's recovery (by the next command) runs; raised, the switch rolls
# itself back, the same calls on every database (a migration raising on each is below):
# raised on SQLite only, which keeps 12 server tests out of the suite's time.
STOPS = [
    pytest.param(SQLITE, "kill", id="sqlite-kill"),
    pytest.param(SQLITE, "raise", id="sqlite-raise"),
    pytest.param(POSTGRESQL, "kill", id="postgresql-kill", marks=pytest.mark.postgres),
    pytest.param(MARIADB, "kill", id="mariadb-kill", marks=pytest.mark.mysql),
]


@pytest.mark.parametrize("point", FAILPOINTS)
@pytest.mark.parametrize(("backend", "how"), STOPS)
def test_a_switch_stopped_at_any_point_ends_before_or_after_it(
    backend: Backend, project_at_feature1_with_emails: Project, point: str, how: str
) -> None:
    """``branchmig switch feature2`` stopped at ``point`` (``how``: kill -9, or an
    exception), then ``status``: the database and checkout are exactly as before the
    switch, or (stopped once it was done) as after it; and a round trip brings feature1's
    database back exactly."""
    p, b = project_at_feature1_with_emails, backend
    before = b.state(p)
    proc = p.branchmig("switch", "feature2", env={"BRANCHMIG_FAILPOINT": f"{point}:{how}"})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    if how == "raise":
        assert f"injected fault at '{point}'" in proc.stderr, proc.stderr
        assert point == "done" or "Nothing changed" in proc.stderr, proc.stderr
    status = p.status()  # puts a killed switch back
    assert not p.journal.exists()
    assert status["pending"] == [] and status["unknown"] == [] and status["in_step"]
    if point == "done":  # it had succeeded
        assert (p.branch(), status["db_heads"]) == ("feature2", [F2])
    else:
        assert (p.branch(), status["db_heads"]) == ("feature1", [F1])
        assert b.state(p) == before
        p.ok("switch", "feature2")
    p.ok("switch", "feature1")
    assert b.state(p) == before


# Where a restoring switch differs from the saving one above: the restore is done and the
# leaving branch's copy kept ("saved"), the restored content saved again ("resaved"), the
# new revision being applied on the restored database ("step"), and the drops of the
# copies the move no longer needs ("done"). Its other points stop it as the saving
# switch's do.
RESTORING_FAILPOINTS = ("saved", "resaved", "step", "done")


@pytest.mark.parametrize("point", RESTORING_FAILPOINTS)
def test_a_restoring_switch_killed_at_any_point_ends_before_or_after_it(
    backend: Backend, project_at_feature1_with_emails: Project, point: str
) -> None:
    """Back to feature1, whose snapshot is restored and which gained F1B since, killed
    at ``point``; then ``status``: the database is feature2's exactly as before, or
    (killed once the move was done) feature1's rows at F1B; the next switch brings them."""
    p, b = project_at_feature1_with_emails, backend
    p.ok("switch", "feature2")
    feature1_gains_phone(p)
    before = b.state(p)
    proc = p.branchmig("switch", "feature1", env={"BRANCHMIG_FAILPOINT": f"{point}:kill"})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    status = p.status()  # puts a killed switch back
    assert not p.journal.exists() and status["pending"] == [] and status["unknown"] == []
    if point != "done":
        assert (p.branch(), status["db_heads"]) == ("feature2", [F2])
        assert b.state(p) == before
        p.ok("switch", "feature1")
    assert p.branch() == "feature1" and b.version(p) == {F1B}
    assert b.users(p) == EMAILS and "phone" in b.columns(p, "users")
    p.ok("switch", "feature2")
    assert b.state(p) == before


@pytest.mark.parametrize("command", ["status", "sync"])
def test_a_switch_killed_mid_migration_is_put_back_by_the_next_command(
    backend: Backend, project_at_feature1_with_emails: Project, tmp_path: Path, command: str
) -> None:
    """SIGKILL while feature2's migration runs (after the checkout, its table made): the
    next command puts the database back as it was and checks feature1 out again; the
    switch then works, feature1's rows coming back with its snapshot."""
    p, b = project_at_feature1_with_emails, backend
    marker = tmp_path / "sleeping"
    commit_slow_feature2(p, marker)
    before = b.state(p)
    kill_mid_switch(p, marker)
    assert p.journal.exists()
    proc = p.branchmig(command)
    assert proc.returncode == 0, proc.stderr
    assert "was interrupted" in said(proc)
    assert b.state(p) == before
    assert p.branch() == "feature1" and not p.journal.exists()
    data = p.status()
    assert (data["db_heads"], data["pending"], data["unknown"]) == ([F1], [], [])
    p.git("checkout", "-q", "feature2")
    p.write(f"{F2}_posts.py", F2_SCRIPT)
    p.commit("feature2: posts, fixed")
    p.git("checkout", "-q", "feature1")
    p.ok("switch", "feature2")
    p.ok("switch", "feature1")
    assert b.users(p) == EMAILS


def test_a_migration_raising_mid_switch_leaves_everything_as_before(
    backend: Backend, project_at_feature1_with_emails: Project
) -> None:
    """The revert of F1 has committed when feature2's upgrade raises (on MariaDB and SQLite
    the table it made stays too): only the snapshot brings the database back. Exit 1 with
    the migration's own error, and ``status`` names the failed move until one completes."""
    p, b = project_at_feature1_with_emails, backend
    commit_raising_feature2(p)
    before = b.state(p)
    proc = p.branchmig("switch", "feature2")
    assert proc.returncode == 1
    assert "RuntimeError: posts cannot be created today" in said(proc)
    assert "Nothing changed" in proc.stderr, proc.stderr
    assert b.state(p) == before and b.version(p) == {F1}
    assert p.branch() == "feature1" and not p.journal.exists()
    status = p.branchmig("status", "--json")
    assert status.returncode == 1
    data = json.loads(status.stdout)
    assert data["db_heads"] == [F1] and data["failure"]["revision"] == F2


def test_a_failing_rehearsal_touches_nothing(
    backend: Backend, project_at_feature1_with_emails: Project
) -> None:
    p, b = project_at_feature1_with_emails, backend
    check_failing_rehearsal_touches_nothing(p, lambda: b.state(p))
