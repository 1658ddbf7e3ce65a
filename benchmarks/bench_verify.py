"""``branchmig verify`` of a branch adding 10 revisions, on SQLite and on PostgreSQL.

Builds (in a temp folder) a real ``alembic init`` project in a git repository: main holds
one revision (``users``); ``feature`` adds N (default 10), each creating a table with an
index and a foreign key to ``users``, and dropping them in its downgrade. Then times
``branchmig verify feature --against main``: a scratch database made, each revision run
up, down and up again with the schema inspected around it, the scratch database dropped.
PostgreSQL is skipped when the server in BRANCHMIG_TEST_POSTGRES_URL is not reachable.

    python benchmarks/bench_verify.py [--revisions 10] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import installed_like_env

POSTGRES_URL = os.environ.get(
    "BRANCHMIG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

SCRIPT = '''"""{message}

Revision ID: {rev}
Revises: {down}
Create Date: 2024-01-01 00:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
{upgrade}


def downgrade() -> None:
{downgrade}
'''

USERS = (
    '    op.create_table("users", sa.Column("id", sa.Integer, primary_key=True),\n'
    '                    sa.Column("name", sa.String(50), nullable=False))',
    '    op.drop_table("users")',
)


def _step(i: int) -> tuple[str, str]:
    return (
        f'    op.create_table("t{i}", sa.Column("id", sa.Integer, primary_key=True),\n'
        f'                    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id")),\n'
        f'                    sa.Column("v", sa.String(20), server_default="x"))\n'
        f'    op.create_index("ix_t{i}_v", "t{i}", ["v"])',
        f'    op.drop_index("ix_t{i}_v", table_name="t{i}")\n    op.drop_table("t{i}")',
    )


def run(
    cmd: list[str], cwd: Path, env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,)
) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode not in ok:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def git(repo: Path, *args: str) -> str:
    return run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", *args], repo
    )


def write(repo: Path, rev: str, down: str | None, bodies: tuple[str, str]) -> None:
    (repo / "alembic" / "versions" / f"{rev}.py").write_text(
        SCRIPT.format(message=rev, rev=rev, down=down, upgrade=bodies[0], downgrade=bodies[1])
    )


def build(repo: Path, url: str, revisions: int) -> None:
    git(repo, "init", "-q", "-b", "main")
    run([sys.executable, "-m", "alembic", "init", "alembic"], repo)
    ini = (repo / "alembic.ini").read_text()
    ini = ini.replace("driver://user:pass@localhost/dbname", url.replace("%", "%%"))
    ini = ini.replace("[logger_alembic]\nlevel = INFO", "[logger_alembic]\nlevel = WARNING")
    (repo / "alembic.ini").write_text(ini)
    (repo / ".gitignore").write_text("app.db\n__pycache__/\n")
    write(repo, "000000000base", None, USERS)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "users")
    git(repo, "checkout", "-q", "-b", "feature")
    down = "000000000base"
    for i in range(revisions):
        rev = f"feature{i:05d}"
        write(repo, rev, down, _step(i))
        down = rev
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "feature")
    git(repo, "checkout", "-q", "main")


def postgres_reachable() -> bool:
    try:
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        engine = create_engine(POSTGRES_URL, poolclass=NullPool)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001 - any failure: skip PostgreSQL
        return False


def bench(label: str, url: str, args: argparse.Namespace, branchmig: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        repo = Path(tmp)
        build(repo, url, args.revisions)
        env = installed_like_env()
        cmd = [*branchmig, "verify", "feature", "--against", "main"]
        out = run(cmd, repo, env)  # warm-up, and a check that it passes
        assert f"Verified {args.revisions} revisions" in out, out
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            run(cmd, repo, env)
            times.append(time.perf_counter() - start)
        med = statistics.median(times)
        print(
            f"{label:<12} verify of {args.revisions} revisions: median {med:.2f} s "
            f"({', '.join(f'{t:.2f}' for t in times)}); "
            f"{1000 * med / args.revisions:.0f} ms per revision, process start included"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revisions", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    bindir = Path(sys.executable).parent
    branchmig = (
        [str(bindir / "branchmig")]
        if (bindir / "branchmig").exists()
        else [sys.executable, "-m", "branchmig"]
    )
    bench("SQLite", "sqlite:///app.db", args, branchmig)
    if postgres_reachable():
        # The live database is never opened: a scratch one is made beside it.
        bench("PostgreSQL", POSTGRES_URL, args, branchmig)
    else:
        print("PostgreSQL: skipped (not reachable; set BRANCHMIG_TEST_POSTGRES_URL)")


if __name__ == "__main__":
    main()
