"""``snapshot restore`` is a move: stopped at any of its failpoints (killed as ``kill -9``
does, or an exception), the next branchmig command ends it as it ends a switch, on SQLite,
PostgreSQL and MariaDB: before it was done, the live database and the snapshot are both
back as they were (the snapshot under its key, though the restore had used it up); once
it was done, it is finished. No snapshot and no row is lost, and no copy is left that the
index does not name."""

from __future__ import annotations

import contextlib
import json
import subprocess
from typing import Any

import pytest
from backends import MARIADB, PASSWORD, POSTGRESQL, SQLITE, Backend
from db_servers import mysql_connection, postgres_connection
from e2e_projects import Project
from sqlalchemy.engine import make_url

from branchmig.snapshots import backend_for_url
from branchmig.snapshots.base import short_hash
from branchmig.snapshots.mysql import snapshot_database_name

# Where BRANCHMIG_FAILPOINT stops a restore (branchmig/move/restore.py), in its order: the
# journal written; the live database holds the snapshot, the copy of what it replaced not
# indexed yet; that copy indexed; the snapshot saved again to be kept (--keep); done.
RESTORE_FAILPOINTS = ("journal", "restored", "saved", "resaved", "done")

STOPS = [
    pytest.param(SQLITE, "kill", id="sqlite-kill"),
    pytest.param(SQLITE, "raise", id="sqlite-raise"),
    pytest.param(POSTGRESQL, "kill", id="postgresql-kill", marks=pytest.mark.postgres),
    pytest.param(MARIADB, "kill", id="mariadb-kill", marks=pytest.mark.mysql),
]


def said(proc: subprocess.CompletedProcess[str]) -> str:
    text = proc.stdout + proc.stderr
    assert PASSWORD not in text and "Traceback" not in text, text
    return text


def copies(p: Project) -> set[str]:
    """The keys of every snapshot copy the database's server (or folder) holds, whether
    the index names it or not."""
    with contextlib.chdir(p.root):  # a relative SQLite URL is the project's
        backend = backend_for_url(p.url, store_dir=p.state_dir / "snapshots")
        return {snap.key for snap in backend.stored()}


def listed(proc: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    assert proc.returncode == 0, proc.stderr
    return {s["key"]: s for s in json.loads(proc.stdout)["snapshots"]}


def stopped(p: Project, point: str, how: str, *options: str) -> None:
    """``snapshot restore point`` stopped at ``point``; the journal is left for the next
    command when it was killed."""
    env = {"BRANCHMIG_FAILPOINT": f"{point}:{how}"}
    proc = p.branchmig("snapshot", "restore", *options, "point", env=env)
    assert proc.returncode != 0, proc.stdout
    said(proc)
    if how == "raise":
        assert f"injected fault at '{point}'" in proc.stderr, proc.stderr
        if point not in ("journal", "done"):  # the restore was made, then put back
            assert "Nothing changed" in proc.stderr, proc.stderr
    else:
        assert p.journal.exists()


@pytest.mark.parametrize("point", RESTORE_FAILPOINTS)
@pytest.mark.parametrize(("backend", "how"), STOPS)
def test_a_restore_stopped_at_any_point_ends_before_or_after_it(
    backend: Backend, project_at_feature1_with_emails: Project, point: str, how: str
) -> None:
    """A save point made by name (kept when restored), a user deleted since; the restore
    stopped at ``point``, then ``snapshot list``: everything as before the restore, or (it
    was done) the save point's rows live, the save point kept and the rows it replaced
    kept as a snapshot. Either way each snapshot then gives its own rows back."""
    p, b = project_at_feature1_with_emails, backend
    p.ok("snapshot", "save", "point")
    saved = b.state(p)
    b.query(p, "DELETE FROM users WHERE name = 'bob'")
    live = b.state(p)
    assert live != saved
    stopped(p, point, how)

    after = p.branchmig("snapshot", "list", "--json")  # ends a killed restore
    index = listed(after)
    assert not p.journal.exists()
    assert all(s["present"] for s in index.values()), index
    assert set(index) == copies(p)  # no copy the index does not name
    if how == "kill" and point != "done":
        assert "restore of snapshot 'point'" in said(after) and "recovering" in after.stderr
    if point == "done":  # it had succeeded: finished
        assert b.state(p) == saved
        [replaced] = set(index) - {"point"}
    else:  # put back: the live rows, and the save point under its key
        assert b.state(p) == live
        assert set(index) == {"point"} and index["point"]["purpose"] == "manual"
        out = p.ok("snapshot", "restore", "point").stdout
        assert "it is kept" in out and b.state(p) == saved
        [replaced] = set(listed(p.branchmig("snapshot", "list", "--json"))) - {"point"}
    assert replaced.startswith("replaced-")
    p.ok("snapshot", "restore", replaced)
    assert b.state(p) == live
    p.ok("snapshot", "restore", "point")
    assert b.state(p) == saved


@pytest.mark.parametrize("point", ["restored", "done"])
def test_a_consuming_restore_killed_is_put_back_or_finished(
    backend: Backend, project_at_feature1_with_emails: Project, point: str
) -> None:
    """``--consume``, and ``status`` the next command: killed before it was done, the
    snapshot it had used up is there again under its key; killed once done, it is gone
    from the index as from the server."""
    p, b = project_at_feature1_with_emails, backend
    p.ok("snapshot", "save", "point")
    saved = b.state(p)
    b.query(p, "DELETE FROM users WHERE name = 'bob'")
    live = b.state(p)
    stopped(p, point, "kill", "--consume")
    assert p.status()["in_step"] and not p.journal.exists()
    index = listed(p.branchmig("snapshot", "list", "--json"))
    assert set(index) == copies(p)
    if point == "done":
        assert "point" not in index and b.state(p) == saved
    else:
        assert set(index) == {"point"} and b.state(p) == live
        assert "it is used up" in p.ok("snapshot", "restore", "--consume", "point").stdout
        assert b.state(p) == saved
    [replaced] = set(listed(p.branchmig("snapshot", "list", "--json")))
    p.ok("snapshot", "restore", replaced)
    assert b.state(p) == live


def _server(p: Project) -> str:
    return make_url(p.url).set(database="postgres").render_as_string(hide_password=False)


def _drop_live(p: Project, b: Backend) -> None:
    live = make_url(p.url).database
    if b is POSTGRESQL:
        with postgres_connection(_server(p)) as conn:
            conn.execute(f'DROP DATABASE "{live}" WITH (FORCE)')
    else:
        with mysql_connection(p.url) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE `{live}`")


@pytest.mark.parametrize(
    ("point", "option"),
    [
        ("journal", "--consume"),
        ("restored", "--consume"),
        ("journal", "--keep"),
        ("restored", "--keep"),
        ("resaved", "--keep"),  # a consuming restore saves nothing again
    ],
)
@pytest.mark.parametrize(
    "backend",
    [
        pytest.param(POSTGRESQL, id="postgresql", marks=pytest.mark.postgres),
        pytest.param(MARIADB, id="mariadb", marks=pytest.mark.mysql),
    ],
)
def test_a_restore_of_a_dropped_live_database_killed_is_finished_or_not_begun(
    backend: Backend, project_at_feature1_with_emails: Project, point: str, option: str
) -> None:
    """The live database dropped from its server: the restore that makes it again has no
    copy to put back. Killed before the restore, the snapshot is as it was and the
    restore then works; killed after it, the next command finishes it: the snapshot it
    used up forgotten, or with ``--keep`` saved again from the rows now live, as the
    restore would have done."""
    p, b = project_at_feature1_with_emails, backend
    p.ok("snapshot", "save", "point")
    saved = b.state(p)
    _drop_live(p, b)
    stopped(p, point, "kill", option)
    index = listed(p.branchmig("snapshot", "list", "--json"))
    assert not p.journal.exists() and set(index) == copies(p)
    if point == "journal":
        assert set(index) == {"point"}
        out = p.ok("snapshot", "restore", option, "point").stdout
        assert "the live database was missing and is made again" in out
    assert ("point" in listed(p.branchmig("snapshot", "list", "--json"))) == (option == "--keep")
    assert b.state(p) == saved
    if option == "--keep":  # the kept copy holds the rows: restoring it again gives them
        b.query(p, "DELETE FROM users")
        p.ok("snapshot", "restore", "point")
        assert b.state(p) == saved


def test_the_next_restore_says_it_put_a_killed_one_back(
    db_at_feature1_head_with_emails: Project,
) -> None:
    """The next command is the restore itself: it puts the killed one back first and says
    so (a note on stderr, ``recovered`` in its JSON), then restores."""
    p = db_at_feature1_head_with_emails
    p.ok("snapshot", "save", "point")
    saved = SQLITE.state(p)
    SQLITE.query(p, "DELETE FROM users")
    stopped(p, "restored", "kill")
    proc = p.ok("snapshot", "restore", "point")
    assert "note: a restore of snapshot 'point' (pid " in proc.stderr, proc.stderr
    assert "was put back as it was before it" in proc.stderr
    assert proc.stdout.startswith("Restored 'point' (heads ") and SQLITE.state(p) == saved
    stopped(p, "saved", "kill")
    data = json.loads(p.ok("snapshot", "restore", "--json", "point").stdout)
    assert "restore of snapshot 'point'" in data["recovered"]
    assert (data["snapshot"], data["kept"]) == ("point", True)
    assert data["replaced"].startswith("replaced-") and data["before"] == data["heads"]
    assert set(listed(p.branchmig("snapshot", "list", "--json"))) == copies(p)


def _named_after_the_live(p: Project, b: Backend) -> set[str]:
    """Every database on the server named after the live one (but itself): its snapshots,
    and what a killed save or restore left of a copy it was making."""
    live = make_url(p.url).database
    prefixes = (f"{live}__bm_", f"bm_partial_{short_hash(live)}_")
    if b is POSTGRESQL:
        with postgres_connection(_server(p)) as conn:
            names = [r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()]
    else:
        with mysql_connection(p.url) as conn, conn.cursor() as cur:
            cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
            names = [r[0] for r in cur.fetchall()]
    return {n for n in names if n.startswith(prefixes)}


def _leave_a_part_made_copy(p: Project, b: Backend, journal: dict[str, Any]) -> str:
    """What a kill inside the backend leaves, made as the backend makes it: PostgreSQL's
    save (the snapshot saved again to be kept) a database under its partial name;
    MariaDB's restore the database of the copy of the live one, made, not yet marked."""
    live = make_url(p.url).database
    if b is POSTGRESQL:
        name = f"bm_partial_{short_hash(live)}_{'0' * 16}"
        with postgres_connection(_server(p)) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    else:
        name = snapshot_database_name(live, journal["safety_snapshot"])
        with mysql_connection(p.url) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
    return name


@pytest.mark.parametrize(
    ("backend", "point", "option"),
    [
        pytest.param(POSTGRESQL, "saved", "--keep", id="postgresql", marks=pytest.mark.postgres),
        pytest.param(MARIADB, "journal", "--consume", id="mariadb", marks=pytest.mark.mysql),
    ],
)
def test_a_copy_a_killed_restore_was_making_is_dropped_by_the_next_command(
    backend: Backend, project_at_feature1_with_emails: Project, point: str, option: str
) -> None:
    """Killed inside the backend, a restore leaves a copy part-made (found by
    ``benchmarks/fault_injection.py --paths restore``: seed 41, PostgreSQL trial 2,
    MariaDB trial 1); the next command, which puts the restore back, drops it: the server
    then holds no database named after the live one but the snapshots the index names."""
    p, b = project_at_feature1_with_emails, backend
    p.ok("snapshot", "save", "point")
    b.query(p, "DELETE FROM users WHERE name = 'bob'")
    live = b.state(p)
    stopped(p, point, "kill", option)
    left = _leave_a_part_made_copy(p, b, json.loads(p.journal.read_text()))
    index = listed(p.branchmig("snapshot", "list", "--json"))
    assert not p.journal.exists() and set(index) == {"point"} and b.state(p) == live
    with contextlib.chdir(p.root):
        stored = backend_for_url(p.url, store_dir=p.state_dir / "snapshots").stored()
    assert left not in _named_after_the_live(p, b)
    assert _named_after_the_live(p, b) == {snap.location for snap in stored}
