"""The three databases a project can live on, behind one small interface, for tests that
state a behaviour once and run it on each: SQLite, PostgreSQL and MariaDB.

``backend`` is parametrised over the three; each ``Backend`` makes a project's database
(unique names; dropped with its snapshots afterwards) and answers the few questions whose
answer differs by database: the rows of a table, its tables and columns, its revisions,
the whole state "exactly as before" compares, and a second session held open on it.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from db_servers import mysql_connection, postgres_connection
from e2e_projects import Project, copy_project, make_seed_project, sqlite_dump
from sqlalchemy.engine import make_url

__all__ = [
    "BACKENDS",
    "MARIADB",
    "PASSWORD",
    "POSTGRESQL",
    "SQLITE",
    "Backend",
    "HeldSession",
    "seed_project_at_feature1_with_emails",
]

# The password the server databases' URLs carry: no output may show it.
PASSWORD = "s3cret-pw"

INSERT_EMAILS = (
    "INSERT INTO users (name, email) VALUES ('ada', 'ada@example.com'), ('bob', 'bob@example.com')"
)

Rows = list[tuple[Any, ...]]


@dataclass(frozen=True)
class HeldSession:
    """Another session open on the project's database, as an app holds one."""

    ident: str  # the server's id for it (a PostgreSQL pid, a MariaDB connection id)
    named: str  # how branchmig's "ended N session(s)" line begins to name it
    query: Callable[[str], Rows]  # a statement run on this very session


@dataclass(frozen=True)
class Backend:
    """What the tests ask a project's database, whichever kind it is."""

    name: str  # "sqlite" | "postgresql" | "mariadb"
    # An idle session blocks a snapshot (PostgreSQL copies and renames whole databases);
    # SQLite writes into the open file and MariaDB swaps tables under it.
    idle_session_blocks: bool
    _connect: Callable[[Project], AbstractContextManager[Any]]
    _tables_sql: Callable[[Project], str]
    _columns_sql: Callable[[Project, str, bool], str]  # (project, table, with types)
    _hold: Callable[[Any, Project], tuple[str, str]]  # a session's (ident, named)
    _state: Callable[[Backend, Project], Any]

    @property
    def on_server(self) -> bool:
        return self.name != "sqlite"

    def query(self, p: Project, statement: str) -> Rows:
        with self._connect(p) as conn:
            return _run(conn, statement)

    def version(self, p: Project) -> set[str]:
        if "alembic_version" not in self.tables(p):
            return set()
        return {r[0] for r in self.query(p, "SELECT version_num FROM alembic_version")}

    def users(self, p: Project) -> Rows:
        return self.query(p, "SELECT name, email FROM users ORDER BY id")

    def tables(self, p: Project) -> set[str]:
        return {r[0] for r in self.query(p, self._tables_sql(p))}

    def columns(self, p: Project, table: str) -> list[str]:
        return [r[0] for r in self.query(p, self._columns_sql(p, table, False))]

    def state(self, p: Project) -> Any:
        """Schema, data and alembic_version: what "exactly as before" compares."""
        return self._state(self, p)

    @contextmanager
    def session(self, p: Project) -> Iterator[HeldSession]:
        with self._connect(p) as conn:
            ident, named = self._hold(conn, p)
            yield HeldSession(ident, named, lambda statement: _run(conn, statement))


def _run(conn: Any, statement: str) -> Rows:
    if isinstance(conn, sqlite3.Connection):
        return [tuple(r) for r in conn.execute(statement).fetchall()]
    cur = conn.cursor()
    try:
        cur.execute(statement)
        return [tuple(r) for r in cur.fetchall()] if cur.description else []
    finally:
        cur.close()


@contextmanager
def _sqlite_connection(p: Project) -> Iterator[sqlite3.Connection]:
    # Autocommit, like the servers' sessions; "rw": a test's question never makes the file.
    conn = sqlite3.connect(f"file:{p.db_path}?mode=rw", uri=True, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def _mariadb_connection(p: Project) -> Iterator[Any]:
    with mysql_connection(p.url, database=make_url(p.url).database) as conn:
        yield conn


def _schema_state(backend: Backend, p: Project) -> dict[str, Any]:
    tables = sorted(backend.tables(p))
    return {
        "columns": {t: backend.query(p, backend._columns_sql(p, t, True)) for t in tables},
        "rows": {t: backend.query(p, f"SELECT * FROM {t} ORDER BY 1") for t in tables},
    }


def _pg_columns(p: Project, table: str, typed: bool) -> str:
    wanted = "column_name, data_type" if typed else "column_name"
    return (
        f"SELECT {wanted} FROM information_schema.columns WHERE table_schema = 'public' "
        f"AND table_name = '{table}' ORDER BY ordinal_position"
    )


def _mariadb_columns(p: Project, table: str, typed: bool) -> str:
    wanted = "COLUMN_NAME, COLUMN_TYPE" if typed else "COLUMN_NAME"
    return (
        f"SELECT {wanted} FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
        f"'{make_url(p.url).database}' AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION"
    )


def _pg_hold(conn: Any, p: Project) -> tuple[str, str]:
    _run(conn, "SET application_name = 'held-by-test'")
    pid = _run(conn, "SELECT pg_backend_pid()")[0][0]
    return str(pid), f"pid {pid} (user {make_url(p.url).username}, held-by-test, from "


def _mariadb_hold(conn: Any, p: Project) -> tuple[str, str]:
    ident = _run(conn, "SELECT CONNECTION_ID()")[0][0]
    return str(ident), f"id {ident} (user {make_url(p.url).username}, from "


SQLITE = Backend(
    name="sqlite",
    idle_session_blocks=False,
    _connect=_sqlite_connection,
    _tables_sql=lambda p: "SELECT name FROM sqlite_master WHERE type = 'table'",
    _columns_sql=lambda p, table, typed: (
        f"SELECT name{', type' if typed else ''} FROM pragma_table_info('{table}')"
    ),
    _hold=lambda conn, p: ("", ""),  # a file: no session to name
    # Every statement of the dump, DDL included: stricter than the servers' comparison.
    _state=lambda backend, p: sqlite_dump(p.db_path),
)
POSTGRESQL = Backend(
    name="postgresql",
    idle_session_blocks=True,
    _connect=lambda p: postgres_connection(p.url),
    _tables_sql=lambda p: (
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    ),
    _columns_sql=_pg_columns,
    _hold=_pg_hold,
    _state=_schema_state,
)
MARIADB = Backend(
    name="mariadb",
    idle_session_blocks=False,
    _connect=_mariadb_connection,
    _tables_sql=lambda p: (
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
        f"'{make_url(p.url).database}'"
    ),
    _columns_sql=_mariadb_columns,
    _hold=_mariadb_hold,
    _state=_schema_state,
)

BACKENDS = [
    pytest.param(SQLITE, id="sqlite"),
    pytest.param(POSTGRESQL, id="postgresql", marks=pytest.mark.postgres),
    pytest.param(MARIADB, id="mariadb", marks=pytest.mark.mysql),
]


# -- making the databases ------------------------------------------------------------------


@pytest.fixture
def postgres_url_with_password(fresh_postgres_url: str) -> str:
    """``fresh_postgres_url`` carrying a password (the server trusts the test role, so it
    accepts any): what no output may show."""
    return make_url(fresh_postgres_url).set(password=PASSWORD).render_as_string(hide_password=False)


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


_URL_FIXTURE = {"postgresql": "postgres_url_with_password", "mariadb": "mysql_url_with_password"}


def seed_project_at_feature1_with_emails(
    backend: Backend, request: pytest.FixtureRequest, template: Path, dest: Path
) -> Project:
    """The seed project on a new database of ``backend`` (a server's URL carrying
    ``PASSWORD``), switched to feature1 (main has no snapshot), two users with emails.
    SQLite's is a copy of the state built once; a server's is built here, by one switch."""
    if not backend.on_server:
        states: dict[str, Project] = request.getfixturevalue("_alembic_states")
        return copy_project(states["at_f1"], dest)
    url = request.getfixturevalue(_URL_FIXTURE[backend.name])
    p = make_seed_project(template, dest, kind="alembic", url=url)
    p.ok("switch", "feature1", "--no-snapshot")
    backend.query(p, INSERT_EMAILS)
    return p


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    """SQLite, PostgreSQL, MariaDB in turn (the servers' tests marked ``postgres`` and
    ``mysql``)."""
    chosen: Backend = request.param
    return chosen


@pytest.fixture
def project_at_feature1_with_emails(
    backend: Backend, request: pytest.FixtureRequest, alembic_template: Path, tmp_path: Path
) -> Project:
    """The seed Alembic project on ``backend``'s database, feature1 checked out, its
    database at F1 holding two users with emails."""
    return seed_project_at_feature1_with_emails(
        backend, request, alembic_template, tmp_path / "project"
    )
