"""The seed scenario on an ``alembic init -t async`` project (env.py runs the migrations
through ``asyncio.run`` on an async engine): feature1's emails survive a round trip on
SQLite through aiosqlite, on PostgreSQL through asyncpg and on MariaDB through aiomysql,
what the ``async`` extra installs."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from db_servers import mysql_connection, postgres_connection
from e2e_projects import ASYNC_BACKENDS, EMAILS, Project, async_seed_project
from sqlalchemy.engine import make_url

INSERT = (
    "INSERT INTO users (name, email) VALUES ('ada', 'ada@example.com'), ('bob', 'bob@example.com')"
)
USERS = "SELECT name, email FROM users ORDER BY id"


def _sql(p: Project, statement: str) -> list[tuple[Any, ...]]:
    """Run ``statement`` on the project's database with a sync driver; the rows it gives."""
    url = make_url(p.url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        conn = sqlite3.connect(p.db_path)
        try:
            with conn:
                return [tuple(r) for r in conn.execute(statement).fetchall()]
        finally:
            conn.close()
    if backend == "postgresql":
        with postgres_connection(p.url) as pg:
            cur = pg.execute(statement)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []
    with mysql_connection(p.url, database=url.database) as my, my.cursor() as cur:
        cur.execute(statement)
        return [tuple(r) for r in cur.fetchall()]


@pytest.mark.parametrize(("driver", "server"), ASYNC_BACKENDS)
def test_an_async_project_keeps_each_branchs_rows(
    request: pytest.FixtureRequest,
    async_alembic_template: Path,
    tmp_path: Path,
    driver: str,
    server: str | None,
) -> None:
    p = async_seed_project(request, async_alembic_template, tmp_path / "app", driver, server)
    p.ok("switch", "feature1")
    _sql(p, INSERT)
    moved = p.ok("switch", "feature2")
    assert "as snapshot" in moved.stderr, moved.stderr
    assert "was never awaited" not in moved.stdout + moved.stderr
    p.ok("switch", "feature1")
    assert f"+{driver}://" in p.status()["database"]
    assert _sql(p, USERS) == EMAILS
