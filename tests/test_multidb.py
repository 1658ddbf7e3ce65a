"""Flask-Migrate ``--multidb`` (``flask db init --multidb``, ``SQLALCHEMY_BINDS``): every
database keeps its own ``alembic_version`` and the scripts have ``upgrade_<bind>()``
functions. The seed scenario runs on both databases at once: the default one holds
``items``, the ``users`` bind holds ``users``; feature1 adds a column to each, feature2 a
table to each. A round trip keeps the rows of both, a failure leaves both as they were."""

from __future__ import annotations

import json
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from db_servers import new_postgres_database, postgres_connection
from e2e_projects import BIN, GITIGNORE, Project, _sh, sqlite_dump, sqlite_version
from gitutil import init_repo

from branchmig.downgrades import find_destructive, find_unbatched

pytest.importorskip("flask_migrate")

BASE, F1, F2, BAD = "base00000001", "f1e000000001", "f2a000000001", "bad000000001"

APP = """\
import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

here = os.path.dirname(os.path.abspath(__file__))
db = SQLAlchemy()
migrate = Migrate()

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = (os.environ.get("BLOG_DATABASE_URL")
                                         or "sqlite:///" + os.path.join(here, "app.db"))
app.config["SQLALCHEMY_BINDS"] = {"users": os.environ.get("BLOG_USERS_URL")
                                  or "sqlite:///" + os.path.join(here, "users.db")}
db.init_app(app)
migrate.init_app(app, db)
"""


def multidb_script(
    revision: str, down: str | None, default: tuple[str, str], users: tuple[str, str]
) -> str:
    """A revision as Flask-Migrate's multidb template writes it: ``upgrade(engine_name)``
    dispatching to one upgrade and downgrade per database (bodies indented 4 spaces)."""
    (up, down_), (up_users, down_users) = default, users
    return (
        f'"""{revision}\n\nRevision ID: {revision}\nRevises: {down}\n\n"""\n'
        "from alembic import op\nimport sqlalchemy as sa\n\n\n"
        f"revision = {revision!r}\ndown_revision = {down!r}\n"
        "branch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade(engine_name):\n"
        '    globals()["upgrade_%s" % engine_name]()\n\n\n'
        "def downgrade(engine_name):\n"
        '    globals()["downgrade_%s" % engine_name]()\n\n\n'
        f"def upgrade_():\n{up}\n\n\ndef downgrade_():\n{down_}\n\n\n"
        f"def upgrade_users():\n{up_users}\n\n\ndef downgrade_users():\n{down_users}\n"
    )


def _table(name: str, *columns: str) -> str:
    cols = "".join(f", sa.Column({c!r}, sa.String(50))" for c in columns)
    return f'    op.create_table("{name}", sa.Column("id", sa.Integer, primary_key=True){cols})'


def _add(table: str, column: str) -> tuple[str, str]:
    return (
        f'    op.add_column("{table}", sa.Column("{column}", sa.String(50)))',
        f'    with op.batch_alter_table("{table}") as batch:\n'
        f'        batch.drop_column("{column}")',
    )


BASE_SCRIPT = multidb_script(
    BASE,
    None,
    (_table("items", "name"), '    op.drop_table("items")'),
    (_table("users", "name"), '    op.drop_table("users")'),
)
F1_SCRIPT = multidb_script(F1, BASE, _add("items", "price"), _add("users", "email"))
F2_SCRIPT = multidb_script(
    F2,
    BASE,
    (_table("posts"), '    op.drop_table("posts")'),
    (_table("profiles"), '    op.drop_table("profiles")'),
)
# The default database's upgrade works; the users bind's raises after it.
BAD_SCRIPT = multidb_script(
    BAD,
    F1,
    (_table("orders"), '    op.drop_table("orders")'),
    ('    raise RuntimeError("no way")', "    pass"),
)


@pytest.fixture(scope="session")
def multidb_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("templates") / "multidb"
    init_repo(path)
    (path / "blog.py").write_text(APP)
    _sh(path, str(BIN / "flask"), "--app", "blog", "db", "init", "--multidb")
    shutil.rmtree(path / "__pycache__", ignore_errors=True)
    return path


def make_multidb_project(
    template: Path, dest: Path, *, urls: tuple[str, str] | None = None
) -> Project:
    """BASE on main, F1 on feature1, F2 on feature2, BAD on broken (from feature1); main
    checked out. ``urls``: the default database's and the bind's (SQLite files if None)."""
    shutil.copytree(template, dest, symlinks=True)
    env = {"FLASK_APP": "blog"}
    if urls is not None:
        env |= {"BLOG_DATABASE_URL": urls[0], "BLOG_USERS_URL": urls[1]}
    (dest / ".gitignore").write_text(GITIGNORE + "users.db\nusers.db-*\n")
    p = Project(
        dest,
        "flask",
        dest / "migrations" / "versions",
        urls[0] if urls else f"sqlite:///{dest / 'app.db'}",
        env,
    )
    p.write(f"{BASE}_base.py", BASE_SCRIPT)
    p.commit("base: items and users")
    for branch, start, name, text in (
        ("feature1", "main", F1, F1_SCRIPT),
        ("feature2", "main", F2, F2_SCRIPT),
        ("broken", "feature1", BAD, BAD_SCRIPT),
    ):
        p.git("checkout", "-q", "-b", branch, start)
        p.write(f"{name}.py", text)
        p.commit(branch)
    p.git("checkout", "-q", "main")
    return p


class SQLiteFiles:
    def __init__(self, p: Project) -> None:
        self.paths = (p.root / "app.db", p.root / "users.db")

    def versions(self) -> list[set[str]]:
        return [sqlite_version(path) for path in self.paths]

    def execute(self, default: str, users: str) -> None:
        for path, sql in zip(self.paths, (default, users), strict=True):
            with sqlite3.connect(path) as conn:
                conn.execute(sql)

    def rows(self, default: str, users: str) -> list[list[tuple[Any, ...]]]:
        out = []
        for path, table in zip(self.paths, (default, users), strict=True):
            with sqlite3.connect(path) as conn:
                out.append(conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall())
        return out

    def dump(self) -> list[list[str]]:
        return [sqlite_dump(path) for path in self.paths]


@pytest.fixture
def sqlite_multidb(multidb_template: Path, tmp_path: Path) -> Project:
    return make_multidb_project(multidb_template, tmp_path / "blog")


def test_heads_plan_and_status_cover_every_database(sqlite_multidb: Project) -> None:
    p = sqlite_multidb
    assert p.ok("heads", "feature1").stdout.split()[0] == F1
    plan = p.ok("plan", "feature1", "feature2").stdout
    assert F1 in plan and F2 in plan
    p.ok("switch", "feature1")
    db = SQLiteFiles(p)
    assert db.versions() == [{F1}, {F1}]
    status = p.status()
    assert [(d["name"], d["heads"]) for d in status["databases"]] == [("", [F1]), ("users", [F1])]
    assert status["split"] is None and status["in_step"]
    text = p.ok("status").stdout
    assert "(default; at f1e000000001)" in text and "(users; at f1e000000001)" in text


def test_hook_round_trip_keeps_the_rows_of_every_database(sqlite_multidb: Project) -> None:
    p = sqlite_multidb
    p.ok("install")
    db = at_feature1_with_rows(p)
    out = p.checkout("feature2")
    assert "Migrating database" not in out.stderr  # env.py's own lines stay out
    assert "Traceback" not in out.stderr
    assert db.versions() == [{F2}, {F2}]
    db.execute("INSERT INTO posts (id) VALUES (7)", "INSERT INTO profiles (id) VALUES (8)")
    p.checkout("feature1")
    assert db.versions() == [{F1}, {F1}]
    assert db.rows("items", "users") == [[(1, "apple", "3")], [(1, "ann", "ann@example.com")]]
    p.checkout("feature2")
    assert db.rows("posts", "profiles") == [[(7,)], [(8,)]]
    p.current()  # flask db current finds every revision


def at_feature1_with_rows(p: Project) -> SQLiteFiles:
    """feature1 switched to, a row written into each database."""
    p.ok("switch", "feature1")
    db = SQLiteFiles(p)
    db.execute(
        "INSERT INTO items (name, price) VALUES ('apple', '3')",
        "INSERT INTO users (name, email) VALUES ('ann', 'ann@example.com')",
    )
    return db


def test_a_failed_switch_leaves_every_database_as_it_was(sqlite_multidb: Project) -> None:
    p = sqlite_multidb
    db = at_feature1_with_rows(p)
    before = db.dump()
    proc = p.branchmig("switch", "broken", "--json")
    assert proc.returncode == 1, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("branchmig:")]
    assert "no way" in errors[-1] and "Nothing changed" in errors[-1], proc.stderr
    # The facts stay fields of the error, for machines: what failed, and what became of it.
    facts = json.loads(proc.stdout)
    assert facts["error"] == errors[-1].removeprefix("branchmig: ")
    assert (facts["kind"], facts["cause"], facts["exit_code"]) == ("MoveFailed", "StepFailed", 1)
    assert (facts["revision"], facts["direction"], facts["restored"]) == (BAD, "upgrade", True)
    assert facts["failure"] == "RuntimeError: no way"
    assert db.dump() == before  # the default database's orders table went too
    assert p.branch() == "feature1"


def test_a_killed_switch_is_put_back_in_every_database(sqlite_multidb: Project) -> None:
    p = sqlite_multidb
    db = at_feature1_with_rows(p)
    before = db.dump()
    proc = p.branchmig("switch", "feature2", env={"BRANCHMIG_FAILPOINT": "migrated:kill"})
    assert proc.returncode != 0
    assert db.versions() == [{F2}, {F2}]  # killed after both moved, before it finished
    status = p.status()
    assert "put back" in status["recovered"]
    assert db.dump() == before
    assert p.branch() == "feature1"


def test_databases_at_different_revisions_are_named_not_moved(sqlite_multidb: Project) -> None:
    p = sqlite_multidb
    p.ok("switch", "feature1")
    db = SQLiteFiles(p)
    db.execute("SELECT 1", f"UPDATE alembic_version SET version_num = '{BASE}'")
    before = db.dump()
    proc = p.branchmig("switch", "feature2")
    assert proc.returncode == 1
    assert "different revisions (<default> at f1e000000001; users at base00000001)" in (
        proc.stderr
    ), proc.stderr
    assert db.dump() == before and p.branch() == "feature1"
    status = p.status()
    assert status["split"] and not status["in_step"]


def test_a_multidb_downgrade_is_read_in_each_database_function() -> None:
    found = find_destructive(F1_SCRIPT.encode(), F1)
    assert [d.target for d in found] == ["items.price", "users.email"]
    unbatched = multidb_script(
        F1, BASE, _add("items", "price"), ("    pass", '    op.drop_column("users", "email")')
    )
    assert [d.target for d in find_unbatched(unbatched.encode(), F1)] == ["users.email"]


# -- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture
def pg_urls(postgres_server_url: str) -> Iterator[tuple[str, str]]:
    name = f"bm_test_{uuid.uuid4().hex[:10]}"
    with (
        new_postgres_database(postgres_server_url, name) as default,
        new_postgres_database(postgres_server_url, f"{name}_users") as users,
    ):
        yield default, users


def _pg_rows(url: str, table: str) -> list[tuple[Any, ...]]:
    with postgres_connection(url) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()


def _pg_state(url: str) -> list[Any]:
    with postgres_connection(url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
        ).fetchall()
        tables = sorted({t for t, _ in columns})
        return [
            columns,
            *(conn.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall() for t in tables),
        ]


@pytest.mark.postgres
def test_postgresql_round_trip_and_failure_keep_both_databases(
    multidb_template: Path, tmp_path: Path, pg_urls: tuple[str, str]
) -> None:
    default, users = pg_urls
    p = make_multidb_project(multidb_template, tmp_path / "blog", urls=pg_urls)
    p.ok("install")
    p.ok("switch", "feature1")
    with postgres_connection(default) as conn:
        conn.execute("INSERT INTO items (id, name, price) VALUES (1, 'apple', '3')")
    with postgres_connection(users) as conn:
        conn.execute("INSERT INTO users (id, name, email) VALUES (1, 'ann', 'a@x')")
    out = p.checkout("feature2")
    assert "Migrating database" not in out.stderr
    assert _pg_rows(default, "posts") == [] and _pg_rows(users, "profiles") == []
    p.checkout("feature1")
    assert _pg_rows(default, "items") == [(1, "apple", "3")]
    assert _pg_rows(users, "users") == [(1, "ann", "a@x")]
    before = [_pg_state(default), _pg_state(users)]
    proc = p.branchmig("switch", "broken")
    assert proc.returncode == 1 and "Nothing changed" in proc.stderr, proc.stderr
    assert [_pg_state(default), _pg_state(users)] == before
    assert p.branch() == "feature1"
