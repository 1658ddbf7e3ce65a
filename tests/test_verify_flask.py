"""``verify``, ``verify --drift`` and ``switch --rehearse`` on Flask-Migrate projects, one
database and ``--multidb``: the app is loaded once and its Flask-SQLAlchemy engines are
pointed at scratch databases (or the rehearsal's copies) in-process, one per bind, so the
app's own env.py migrates them. The live databases are never opened by ``verify``: the
SQLite files keep their bytes and times, and a PostgreSQL database that refuses every
connection meanwhile does not stop it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from db_servers import new_postgres_database, postgres_connection
from e2e_projects import (
    BASE,
    BIN,
    F1,
    Project,
    _sh,
    check_failing_rehearsal_touches_nothing,
    make_seed_project,
    script,
    sqlite_dump,
)
from gitutil import init_repo
from test_multidb import APP, make_multidb_project, multidb_script

pytest.importorskip("flask_migrate")

# With test_verify: a verify drops the scratch databases of killed runs that one plants.
pytestmark = pytest.mark.xdist_group("verify-scratch")

TAGS = "f3a900000003"
FORGETS_A_TABLE = script(
    TAGS,
    BASE,
    '    op.create_table("tags", sa.Column("id", sa.Integer, primary_key=True))',
    "    pass",
)
# The users bind's downgrade forgets the table its upgrade made; the default one's is sound.
FORGETS_IN_ONE_BIND = multidb_script(
    TAGS,
    BASE,
    (
        '    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True))',
        '    op.drop_table("notes")',
    ),
    ('    op.create_table("badges", sa.Column("id", sa.Integer, primary_key=True))', "    pass"),
)


@pytest.fixture(scope="session")
def flask_multidb_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("templates") / "flask-multidb"
    init_repo(path)
    (path / "blog.py").write_text(APP)
    _sh(path, str(BIN / "flask"), "--app", "blog", "db", "init", "--multidb")
    shutil.rmtree(path / "__pycache__", ignore_errors=True)
    return path


def add_branch(p: Project, name: str, filename: str, text: str) -> None:
    p.git("checkout", "-q", "-b", name, "main")
    p.write(filename, text)
    p.commit(f"{name}: migrations")
    p.git("checkout", "-q", "main")


def verify(p: Project, *args: str) -> tuple[int, dict[str, Any]]:
    proc = p.branchmig("verify", *args, "--json")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _untouched(*paths: Path) -> list[tuple[bytes, int]]:
    """What "never opened" compares for SQLite: each file's bytes and modification time
    (and no journal or WAL file beside it)."""
    for path in paths:
        assert not Path(f"{path}-journal").exists() and not Path(f"{path}-wal").exists()
    return [(path.read_bytes(), path.stat().st_mtime_ns) for path in paths]


def _trace(report: dict[str, Any]) -> str:
    assert [f["kind"] for f in report["findings"]][:1] == ["trace"], report
    message: str = report["findings"][0]["message"]
    return message


def test_a_flask_project_is_verified_without_opening_its_database(
    flask_template: Path, tmp_path: Path
) -> None:
    p = make_seed_project(flask_template, tmp_path / "project", kind="flask")
    add_branch(p, "tags", f"{TAGS}_tags.py", FORGETS_A_TABLE)
    # Opening a SQLite file that is not there makes it: none is made.
    assert verify(p, "feature1", "--against", "main")[0] == 0
    assert not p.db_path.exists()
    p.ok("sync")
    before = _untouched(p.db_path)
    assert verify(p, "feature1", "--against", "main")[0] == 0
    code, report = verify(p, "tags", "--against", "main")
    assert code == 1 and "table 'tags' is left behind" in _trace(report)
    assert _untouched(p.db_path) == before

    assert "no drift" in p.ok("verify", "--drift").stdout
    moved = p.ok("switch", "feature1", "--rehearse")
    assert "rehearsing the move on a copy" in moved.stderr
    assert p.status()["db_heads"] == [F1]


def test_a_failing_rehearsal_of_a_flask_project_touches_nothing(
    flask_template: Path, tmp_path: Path
) -> None:
    p = make_seed_project(flask_template, tmp_path / "project", kind="flask")
    p.ok("switch", "feature1")
    check_failing_rehearsal_touches_nothing(p, lambda: sqlite_dump(p.db_path))


def test_a_multidb_flask_project_names_the_bind_whose_downgrade_forgets_a_table(
    flask_multidb_template: Path, tmp_path: Path
) -> None:
    p = make_multidb_project(flask_multidb_template, tmp_path / "blog")
    add_branch(p, "badges", f"{TAGS}_badges.py", FORGETS_IN_ONE_BIND)
    files = (p.root / "app.db", p.root / "users.db")
    assert verify(p, "feature1", "--against", "main")[0] == 0
    assert not any(path.exists() for path in files)
    p.ok("sync")
    before = _untouched(*files)
    assert verify(p, "feature1", "--against", "main")[0] == 0
    code, report = verify(p, "badges", "--against", "main")
    assert code == 1
    assert "table 'badges' in database 'users' is left behind" in _trace(report)
    assert "notes" not in _trace(report)
    assert report["findings"][0]["differences"] == [
        {
            "kind": "table",
            "name": "badges",
            "change": "added",
            "old": None,
            "new": "(id)",
            "database": "users",
        }
    ]
    assert _untouched(*files) == before

    assert "no drift" in p.ok("verify", "--drift").stdout
    assert verify(p, "feature1", "--against", "main", "--data")[0] == 0  # a copy per bind
    p.ok("switch", "feature1", "--rehearse")
    assert p.status()["db_heads"] == [F1]


@pytest.mark.postgres
def test_a_postgresql_flask_multidb_project_is_verified_while_its_databases_refuse_connections(
    flask_multidb_template: Path, tmp_path: Path, postgres_server_url: str
) -> None:
    names = [f"bm_h9_{os.getpid()}_{which}" for which in ("blog", "users")]
    with (
        new_postgres_database(postgres_server_url, names[0]) as blog,
        new_postgres_database(postgres_server_url, names[1]) as users,
    ):
        p = make_multidb_project(flask_multidb_template, tmp_path / "blog", urls=(blog, users))
        add_branch(p, "badges", f"{TAGS}_badges.py", FORGETS_IN_ONE_BIND)
        p.ok("sync")
        with postgres_connection(postgres_server_url) as conn:
            for name in names:
                conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            assert verify(p, "feature1", "--against", "main")[0] == 0
            code, report = verify(p, "badges", "--against", "main")
        finally:
            with postgres_connection(postgres_server_url) as conn:
                for name in names:
                    conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        assert code == 1
        assert "table 'badges' in database 'users' is left behind" in _trace(report)
        assert "no drift" in p.ok("verify", "--drift").stdout
        p.ok("switch", "feature1", "--rehearse")
        assert p.status()["db_heads"] == [F1]


USER_MODEL = """

class User(db.Model):
    __tablename__ = "users"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(50), nullable=False)
"""


def test_models_are_compared_with_the_working_trees_migrations(
    flask_template: Path, tmp_path: Path
) -> None:
    p = make_seed_project(flask_template, tmp_path / "project", kind="flask")
    blog = p.root / "blog.py"
    blog.write_text(blog.read_text() + USER_MODEL)
    proc = p.branchmig("verify", "--models")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"The models match the migrations at {BASE}." in proc.stdout
    # A model change with no migration: named, as alembic check names it.
    blog.write_text(blog.read_text() + "    nick = db.Column(db.String(20))\n")
    proc = p.branchmig("verify", "--models", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["differences"] == ["add_column 'users.nick'"]
    assert not p.db_path.exists()  # only a scratch database was made


def test_models_without_target_metadata_are_said_in_one_line(
    alembic_template: Path, tmp_path: Path
) -> None:
    p = make_seed_project(alembic_template, tmp_path / "project", kind="alembic")
    proc = p.branchmig("verify", "--models")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("branchmig: env.py gives no target_metadata"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
