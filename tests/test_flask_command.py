"""``flask branchmig ...`` on a real Flask-Migrate project: the real ``flask`` executable
finds the command through the ``flask.commands`` entry point and hands over the app it
loaded with ``--app`` (FLASK_APP is set nowhere)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_projects import (
    BASE,
    EMAILS,
    F1,
    F2,
    Project,
    emails,
    insert_users,
    make_seed_project,
    sqlite_columns,
    sqlite_tables,
    sqlite_version,
)

pytest.importorskip("flask_migrate")

FLASK = str(Path(sys.executable).with_name("flask"))


def flask(p: Project, *args: str) -> subprocess.CompletedProcess[str]:
    """``flask --app blog ARGS`` in the project."""
    return p.run(FLASK, "--app", "blog", *args)


def flask_ok(p: Project, *args: str) -> subprocess.CompletedProcess[str]:
    proc = flask(p, *args)
    assert proc.returncode == 0, f"flask {' '.join(args)}:\n{proc.stdout}{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.fixture
def flask_repo_without_flask_app(flask_template: Path, tmp_path: Path) -> Project:
    """Flask-Migrate on SQLite, main checked out, no database yet; nothing names the app
    (no FLASK_APP, .flaskenv or flask_app setting): only ``flask --app`` does."""
    p = make_seed_project(flask_template, tmp_path / "blog", kind="flask", flask_app="none")
    assert "FLASK_APP" not in p.environ()
    return p


def test_flask_lists_branchmig_and_its_commands(flask_repo_without_flask_app: Project) -> None:
    p = flask_repo_without_flask_app
    assert "branchmig" in flask_ok(p, "--help").stdout
    usage = flask_ok(p, "branchmig", "--help").stdout
    assert usage.startswith("Usage: flask branchmig [OPTIONS] COMMAND")
    for option in ("-c, --config", "-v, --verbose", "-q, --quiet"):
        assert option in usage
    for command in ("heads", "status", "switch", "sync", "snapshot", "merge-heads"):
        assert f"  {command} " in usage, usage


def test_flask_branchmig_heads_and_status(flask_repo_without_flask_app: Project) -> None:
    p = flask_repo_without_flask_app
    heads = flask_ok(p, "branchmig", "heads").stdout
    assert heads.startswith(f"{BASE} (head)  migrations/versions/{BASE}_users.py"), heads
    assert json.loads(flask_ok(p, "branchmig", "heads", "feature1", "--json").stdout) == {
        "ref": "feature1",
        "heads": [F1],
    }
    status = json.loads(flask_ok(p, "branchmig", "status", "--json").stdout)
    # The conventions' options after the command, as under the console script.
    assert json.loads(flask_ok(p, "branchmig", "status", "-q", "--json").stdout) == status
    assert json.loads(flask_ok(p, "branchmig", "--json", "status").stdout) == status
    assert status["branch"] == "main"
    assert status["db_heads"] == [] and status["pending"] == [BASE]
    assert status["database"] == f"sqlite:///{p.db_path}"


def test_flask_branchmig_switch_round_trip_keeps_every_branch_rows(
    flask_repo_without_flask_app: Project,
) -> None:
    p = flask_repo_without_flask_app
    # The console script alone cannot find this app; under flask it is given.
    assert p.branchmig("switch", "feature1").returncode == 2
    flask_ok(p, "branchmig", "switch", "feature1")
    assert p.branch() == "feature1"
    assert sqlite_version(p.db_path) == {F1}
    insert_users(p.db_path)

    moved = flask_ok(p, "branchmig", "switch", "feature2")
    assert "as snapshot" in moved.stderr  # leaving drops users.email: feature1 is saved
    assert sqlite_version(p.db_path) == {F2}
    assert "email" not in sqlite_columns(p.db_path, "users")
    assert F2 in flask_ok(p, "db", "current").stdout

    quiet = flask_ok(p, "branchmig", "-q", "switch", "feature1")
    assert quiet.stderr == "", quiet.stderr
    assert sqlite_version(p.db_path) == {F1}
    assert "posts" not in sqlite_tables(p.db_path)
    conn = sqlite3.connect(p.db_path)
    try:
        assert emails(conn) == EMAILS
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (
            ("switch", "nowhere"),
            2,
            "branchmig: Unknown git ref 'nowhere': no branch, tag or "
            "commit of that name (see 'git branch -a')",
        ),
        (("snapshot", "restore", "nosuch"), 1, "branchmig: No snapshot 'nosuch' of this database"),
    ],
)
def test_flask_branchmig_error_is_one_line_with_its_exit_code(
    flask_repo_without_flask_app: Project, args: tuple[str, ...], code: int, said: str
) -> None:
    p = flask_repo_without_flask_app
    proc = flask(p, "branchmig", *args)
    assert proc.returncode == code
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(said), proc.stderr
    # As the console script says it, given the app another way.
    alone = p.branchmig(*args, env={"FLASK_APP": "blog"})
    assert (alone.returncode, alone.stderr) == (proc.returncode, proc.stderr)
    assert p.branch() == "main"


def test_flask_completes_branchmig_commands(flask_repo_without_flask_app: Project) -> None:
    proc = flask_repo_without_flask_app.run(
        FLASK,
        env={
            "COMP_WORDS": "flask branchmig sn",
            "COMP_CWORD": "2",
            "_FLASK_COMPLETE": "bash_complete",
        },
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["plain,snapshot"]
