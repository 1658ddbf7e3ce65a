"""The seed scenario on an ``alembic init -t async`` project (env.py runs the migrations
through ``asyncio.run`` on an async engine): feature1's emails survive a round trip on
SQLite through aiosqlite and on PostgreSQL through asyncpg, what the ``async`` extra
installs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from db_servers import postgres_connection
from e2e_projects import EMAILS, asyncpg_project, emails, make_seed_project

pytest.importorskip("aiosqlite")
pytest.importorskip("asyncpg")


def test_an_async_sqlite_project_keeps_each_branchs_rows(
    async_alembic_template: Path, tmp_path: Path
) -> None:
    p = make_seed_project(
        async_alembic_template, tmp_path / "app", kind="alembic", url="sqlite+aiosqlite:///app.db"
    )
    p.ok("switch", "feature1")
    with sqlite3.connect(p.db_path) as conn:
        conn.executemany(
            "INSERT INTO users (name, email) VALUES (?, ?)", [tuple(e) for e in EMAILS]
        )
    p.ok("switch", "feature2")
    p.ok("switch", "feature1")
    assert p.status()["database"] == "sqlite+aiosqlite:///app.db"
    conn = sqlite3.connect(p.db_path)
    try:
        assert emails(conn) == EMAILS
    finally:
        conn.close()


@pytest.mark.postgres
def test_an_asyncpg_project_keeps_each_branchs_rows(
    async_alembic_template: Path, tmp_path: Path, fresh_postgres_url: str
) -> None:
    p = asyncpg_project(async_alembic_template, tmp_path / "app", fresh_postgres_url)
    p.ok("switch", "feature1")
    with postgres_connection(fresh_postgres_url) as conn:
        conn.execute("INSERT INTO users (name, email) VALUES ('ada', 'ada@example.com')")
        conn.execute("INSERT INTO users (name, email) VALUES ('bob', 'bob@example.com')")
    moved = p.ok("switch", "feature2")
    assert "as snapshot" in moved.stderr, moved.stderr
    p.ok("switch", "feature1")
    with postgres_connection(fresh_postgres_url) as conn:
        rows = conn.execute("SELECT name, email FROM users ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == EMAILS
