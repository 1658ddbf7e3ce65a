"""How ``branchmig status`` and ``branchmig snapshot list`` grow with the number of
snapshots: each timed with 1 snapshot and with many (100 on SQLite, 20 on PostgreSQL),
and the ratio printed. Flat means a ratio near 1: the work is one query per server and one
git call per question, not one per snapshot.

A real ``alembic init`` project in a temporary git repository; each snapshot is its own
branch's (``git checkout -b bN`` then ``branchmig snapshot save``), one in ten of them
renamed afterwards and one in ten deleted, so that the "restored by another branch"
answer is asked too. PostgreSQL databases are named ``bm_bench_st_*`` and dropped at the
end.

On PostgreSQL it also times, in the same run, ``status`` the full way (nothing remembered:
Alembic loaded, env.py run) and the floors: Python's start, ``import psycopg`` with one
connection and query (what any driver-based answer pays), and one ``psql`` query (what
the remembered answer pays for its one round trip).

    python benchmarks/bench_status_snapshots.py [--pg-url URL] [--runs 5] [--sqlite-only]
        [--postgresql-only]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import installed_like_env  # noqa: E402

BIN = Path(sys.executable).parent
BASE = '''"""base"""
import sqlalchemy as sa
from alembic import op

revision = "base00000001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("users", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("users")
'''


def run(cwd: Path, *args: str, env: dict[str, str]) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def git_env() -> dict[str, str]:
    env = installed_like_env()
    env.update(
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@example.com",
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@example.com",
        GIT_CONFIG_NOSYSTEM="1",
        HOME=os.environ.get("HOME", "/tmp"),
    )
    return env


def make_project(root: Path, url: str, snapshots: int, env: dict[str, str]) -> None:
    """A project whose database has ``snapshots`` snapshots, each of its own branch."""
    root.mkdir(parents=True)
    run(root, "git", "init", "-q", "-b", "main", env=env)
    run(root, str(BIN / "alembic"), "-q", "init", "alembic", env=env)
    ini = (root / "alembic.ini").read_text()
    (root / "alembic.ini").write_text(
        "\n".join(
            f"sqlalchemy.url = {url}" if line.startswith("sqlalchemy.url") else line
            for line in ini.splitlines()
        )
        + "\n"
    )
    (root / "alembic" / "versions" / "base00000001_base.py").write_text(BASE)
    (root / ".gitignore").write_text("app.db\n__pycache__/\n")
    run(root, "git", "add", "-A", env=env)
    run(root, "git", "commit", "-q", "-m", "base", env=env)
    bm = str(BIN / "branchmig")
    run(root, bm, "sync", env=env)
    for n in range(snapshots):
        run(root, "git", "checkout", "-q", "-b", f"b{n}", "main", env=env)
        run(root, "git", "commit", "-q", "--allow-empty", "-m", f"b{n}", env=env)
        run(root, bm, "snapshot", "save", env=env)
    for n in range(3, snapshots, 10):
        run(root, "git", "branch", "-m", f"b{n}", f"renamed{n}", env=env)
    run(root, "git", "checkout", "-q", "main", env=env)
    for n in range(7, snapshots, 10):
        run(root, "git", "branch", "-q", f"kid{n}", f"b{n}", env=env)
        run(root, "git", "branch", "-q", "-D", f"b{n}", env=env)


def timed(
    root: Path, args: list[str], runs: int, env: dict[str, str], *, cold: bool = False
) -> float:
    """The median of ``runs`` runs of ``args`` (``branchmig`` ones by default), warm;
    ``cold``: with the remembered database forgotten before each."""
    argv = (
        args if not args[0].startswith(("status", "snapshot")) else [str(BIN / "branchmig"), *args]
    )
    run(root, *argv, env=env)  # warm: the remembered answers are written
    times = []
    for _ in range(runs):
        if cold:
            for memo in (root / ".git" / "branchmig" / "remembered").glob("*.json"):
                memo.unlink()
        start = time.perf_counter()
        run(root, *argv, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def floors(root: Path, url: str, runs: int, env: dict[str, str]) -> None:
    """What no ``status`` on this server can go below, timed beside it."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    conninfo = parsed.set(drivername="postgresql").render_as_string(False)
    query = "SELECT version_num FROM alembic_version"
    driver = f"import psycopg; psycopg.connect({conninfo!r}).execute({query!r}).fetchall()"
    rows = [
        ("status, nothing remembered (Alembic, env.py)", ["status"], True),
        ("python -c pass", [sys.executable, "-c", "pass"], False),
        ("python: import psycopg, connect, query", [sys.executable, "-c", driver], False),
        ("psql -c (one query)", ["psql", "-X", "-q", "-A", "-t", conninfo, "-c", query], False),
    ]
    for label, argv, cold in rows:
        print(f"postgresql floor   {label:<45} {timed(root, argv, runs, env, cold=cold):.3f} s")


def bench(name: str, url_for: object, many: int, runs: int, tmp: Path) -> None:
    env = git_env()
    results: dict[int, dict[str, float]] = {}
    for count in (1, many):
        root = tmp / f"{name}-{count}"
        url = url_for(root) if callable(url_for) else str(url_for)
        make_project(root, url, count, env)
        results[count] = {
            cmd: timed(root, cmd.split(), runs, env) for cmd in ("status", "snapshot list")
        }
        if name == "postgresql" and count == many:
            floors(root, url, runs, env)
    for cmd in ("status", "snapshot list"):
        one, lots = results[1][cmd], results[many][cmd]
        print(
            f"{name:<10} {cmd:<14} 1 snapshot: {one:.3f} s   {many} snapshots: "
            f"{lots:.3f} s   ratio {lots / one:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default=os.environ.get("BRANCHMIG_TEST_POSTGRES_URL"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sqlite", type=int, default=100)
    parser.add_argument("--postgresql", type=int, default=20)
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--postgresql-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bm-bench-status-") as folder:
        tmp = Path(folder)
        if not args.postgresql_only:
            sqlite_url = lambda root: f"sqlite:///{root / 'app.db'}"  # noqa: E731
            bench("sqlite", sqlite_url, args.sqlite, args.runs, tmp)
        if args.sqlite_only or not args.pg_url:
            return
        import psycopg
        from sqlalchemy.engine import make_url

        admin = make_url(args.pg_url)
        names: list[str] = []

        def pg_url(root: Path) -> str:
            name = f"bm_bench_st_{uuid.uuid4().hex[:10]}"
            names.append(name)
            conninfo = admin.set(drivername="postgresql").render_as_string(False)
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            return admin.set(database=name).render_as_string(hide_password=False)

        try:
            bench("postgresql", pg_url, args.postgresql, args.runs, tmp)
        finally:
            conninfo = admin.set(drivername="postgresql").render_as_string(False)
            with psycopg.connect(conninfo, autocommit=True) as conn:
                ids = [n.removeprefix("bm_bench_st_") for n in names]
                rows = [
                    row
                    for row in conn.execute("SELECT datname FROM pg_database").fetchall()
                    if any(i in row[0] for i in ids)
                ]
                for (db,) in rows:
                    conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


if __name__ == "__main__":
    main()
