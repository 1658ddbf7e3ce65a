"""Fixtures for the real database servers the snapshot tests run against.

The servers come from the environment (``BRANCHMIG_TEST_POSTGRES_URL``,
``BRANCHMIG_TEST_MYSQL_URL``). An unreachable server skips its tests on a developer's
machine, but fails them in CI (``CI`` set) or with ``BRANCHMIG_REQUIRE_SERVERS=1``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from branchmig.urls import mask_url

__all__ = [
    "drop_mysql_database_and_snapshots",
    "drop_postgres_database_and_snapshots",
    "fresh_mysql_url",
    "fresh_postgres_url",
    "mysql_connection",
    "mysql_server_url",
    "new_mysql_database",
    "postgres_connection",
    "postgres_server_url",
    "url_with_database",
]

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306/mysql"


def _servers_required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("BRANCHMIG_REQUIRE_SERVERS") == "1"


def _unreachable(message: str) -> None:
    if _servers_required():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def url_with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


@contextmanager
def postgres_connection(url: str, **options: Any) -> Iterator[Any]:
    """An autocommit psycopg session on the database ``url`` names (``options`` go to
    ``psycopg.connect``, an ``application_name`` say)."""
    import psycopg

    parsed = make_url(url)
    conn = psycopg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        dbname=parsed.database,
        autocommit=True,
        connect_timeout=5,
        **options,
    )
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def mysql_connection(url: str, *, database: str | None = None) -> Iterator[Any]:
    """An autocommit pymysql connection to the server ``url`` names."""
    import pymysql

    parsed = make_url(url)
    conn = pymysql.connect(
        host=parsed.host or "localhost",
        port=parsed.port or 3306,
        user=parsed.username or "",
        password=parsed.password or "",
        database=database,
        autocommit=True,
        connect_timeout=5,
        charset="utf8mb4",
        # The tests' own reads and writes, on the test server: PyMySQL 1.1+ otherwise
        # builds a TLS context for every connection (the CA bundle read, ~20 ms).
        ssl_disabled=True,
    )
    try:
        yield conn
    finally:
        conn.close()


def _unique_name() -> str:
    return f"bm_test_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    url = os.environ.get("BRANCHMIG_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    try:
        with postgres_connection(url) as conn:
            conn.execute("SELECT 1")
    except Exception as err:
        _unreachable(
            f"PostgreSQL not reachable at {mask_url(url)} ({type(err).__name__}); set "
            "BRANCHMIG_TEST_POSTGRES_URL to a server where the role may create databases"
        )
    return url


@pytest.fixture(scope="session")
def mysql_server_url() -> str:
    url = os.environ.get("BRANCHMIG_TEST_MYSQL_URL", DEFAULT_MYSQL_URL)
    try:
        with mysql_connection(url) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
    except Exception as err:
        _unreachable(
            f"MySQL not reachable at {mask_url(url)} ({type(err).__name__}); set "
            "BRANCHMIG_TEST_MYSQL_URL to a server where the user may create databases"
        )
    return url


def drop_postgres_database_and_snapshots(server_url: str, name: str) -> None:
    """Drop database ``name`` and every snapshot database branchmig made of it."""
    from psycopg import sql

    with postgres_connection(server_url) as conn:
        rows = conn.execute(
            "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database"
        ).fetchall()
        doomed = []
        for datname, comment in rows:
            of_it = False
            if comment and comment.startswith("branchmig snapshot "):
                with suppress(ValueError):
                    of_it = json.loads(comment[len("branchmig snapshot ") :]).get("live") == name
            if datname == name or datname.startswith(f"{name}__bm_") or of_it:
                doomed.append(datname)
        for datname in doomed:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (datname,),
            )
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(datname))
            )


def drop_mysql_database_and_snapshots(server_url: str, name: str) -> None:
    with mysql_connection(server_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_SCHEMA, TABLE_COMMENT FROM information_schema.TABLES "
            "WHERE TABLE_NAME = '_branchmig_snapshot'"
        )
        doomed = {name}
        for schema, comment in cur.fetchall():
            try:
                if json.loads(comment).get("live") == name:
                    doomed.add(schema)
            except ValueError:
                pass
        cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
        doomed |= {row[0] for row in cur.fetchall() if row[0].startswith(f"{name}__bm_")}
        for schema in doomed:
            escaped = schema.replace("`", "``")
            cur.execute(f"DROP DATABASE IF EXISTS `{escaped}`")


@contextmanager
def new_postgres_database(server_url: str, name: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database ``name``; it and its snapshots go
    afterwards."""
    from psycopg import sql

    with postgres_connection(server_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield url_with_database(server_url, name)
    finally:
        drop_postgres_database_and_snapshots(server_url, name)


@pytest.fixture
def fresh_postgres_url(postgres_server_url: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database; it and its snapshots go afterwards."""
    with new_postgres_database(postgres_server_url, _unique_name()) as url:
        yield url


@contextmanager
def new_mysql_database(server_url: str) -> Iterator[str]:
    """The URL of a new, empty MySQL database; it and its snapshots go afterwards."""
    name = _unique_name()
    with mysql_connection(server_url) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    try:
        yield url_with_database(server_url, name)
    finally:
        drop_mysql_database_and_snapshots(server_url, name)


@pytest.fixture
def fresh_mysql_url(mysql_server_url: str) -> Iterator[str]:
    """The URL of a new, empty MySQL database; it and its snapshots go afterwards."""
    with new_mysql_database(mysql_server_url) as url:
        yield url
