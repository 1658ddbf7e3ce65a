"""PostgreSQL's named types in one run of env.py: SQLAlchemy makes or drops an enum once
per run (it notes each on Alembic's DDL runner). A move reverts one branch's table and
its enum, then creates another branch's table with an enum of the same name, in one run:
the type must be made again, as two separate ``alembic`` runs would make it."""

from __future__ import annotations

from pathlib import Path

import pytest
from db_servers import postgres_connection
from e2e_projects import make_seed_project

pytestmark = pytest.mark.postgres

MOOD_TABLE = '''"""{table} with a mood

Revision ID: {rev}
Revises: base00000001
Create Date: 2024-01-01 00:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = {rev!r}
down_revision = "base00000001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        {table!r},
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("mood", sa.Enum("happy", "sad", name="mood")),
    )


def downgrade():
    op.drop_table({table!r})
    sa.Enum(name="mood").drop(op.get_bind(), checkfirst=True)
'''


def test_a_move_between_branches_whose_tables_share_an_enum_makes_it_again(
    alembic_template: Path, tmp_path: Path, fresh_postgres_url: str
) -> None:
    p = make_seed_project(alembic_template, tmp_path / "p", kind="alembic", url=fresh_postgres_url)
    base = p.git("log", "--format=%H", "-1", "main").strip()
    for branch, rev, table in (
        ("moods1", "m1000000001", "notes"),
        ("moods2", "m2000000002", "logs"),
    ):
        p.git("checkout", "-q", "-b", branch, base)
        p.write(f"{rev}_{table}.py", MOOD_TABLE.format(rev=rev, table=table))
        p.commit(f"{branch}: {table} with a mood")
    p.git("checkout", "-q", "main")
    p.ok("sync")
    p.ok("switch", "moods1")
    for target, table, gone in (("moods2", "logs", "notes"), ("moods1", "notes", "logs")):
        p.ok("switch", target, "--no-snapshot")
        with postgres_connection(p.url) as conn:
            tables = {
                r[0]
                for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            }
            types = {r[0] for r in conn.execute("SELECT typname FROM pg_type WHERE typtype = 'e'")}
        assert table in tables and gone not in tables
        assert types == {"mood"}
