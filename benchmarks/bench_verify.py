"""``branchmig verify`` beside pytest-alembic's built-in tests, on the same revisions,
on SQLite and on PostgreSQL.

Builds (in a temp folder) a real ``alembic init`` project in a git repository: main holds
no revision yet; ``feature`` adds N (default 10): ``users``, then tables each with an
index and a foreign key to ``users``, dropped in their downgrades, and ``models.py``
describing them (env.py's ``target_metadata``). Then times, interleaved round by round
so that the machine's drift hits both alike:

- ``branchmig verify feature --against main``: a scratch database made, each of the N
  revisions run up, down and up again with the schema inspected around it, the scratch
  database dropped;
- ``pytest --test-alembic`` on feature's tree: pytest-alembic's built-in tests
  (test_single_head_revision, test_upgrade, test_model_definitions_match_ddl,
  test_up_down_consistency) on an empty database made for each round (not timed).

pytest-alembic breaks collection under pytest 9, so it runs from a virtual environment of
its own, named by ``--pytest-alembic-python`` (made with ``python3 -m venv DIR && DIR/bin/pip
install 'pytest<9' pytest-alembic 'psycopg[binary]' sqlalchemy alembic``); without it that
column is left out. PostgreSQL is skipped when the server in BRANCHMIG_TEST_POSTGRES_URL is
not reachable; its databases are named ``bench_verify_<pid>_...`` and dropped afterwards.

    python benchmarks/bench_verify.py [--revisions 10] [--rounds 5]
        [--pytest-alembic-python PATH]
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

MODELS_HEAD = """import sqlalchemy as sa

metadata = sa.MetaData()
"""

MODEL_USERS = """
users = sa.Table("users", metadata, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("name", sa.String(50), nullable=False))
"""

# env.py takes pytest-alembic's engine when it is handed one (config.attributes, as
# pytest-alembic's documentation asks), else sqlalchemy.url as alembic and branchmig give.
ENGINE_FROM_CONFIG = "    connectable = engine_from_config("
ENGINE_FROM_EITHER = '    connectable = config.attributes.get("connection") or engine_from_config('

# pytest-alembic's tests each start from an empty database, as its documentation runs
# them: on SQLite its own default (a new in-memory engine per test), on PostgreSQL a new
# database per test (what pytest-mock-resources gives), made and dropped in the run.
CONFTEST_POSTGRES = """import os
import secrets

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


@pytest.fixture
def alembic_engine():
    server_url = make_url(os.environ["BENCH_ALEMBIC_URL"])
    name = f"{os.environ['BENCH_ALEMBIC_PREFIX']}_{secrets.token_hex(3)}"
    server = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(server_url.set(database=name))
    try:
        yield engine
    finally:
        engine.dispose()
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()
"""

PYTEST_ALEMBIC_TESTS = 4  # the built-in tests --test-alembic runs


def _step(i: int) -> tuple[str, str]:
    return (
        f'    op.create_table("t{i}", sa.Column("id", sa.Integer, primary_key=True),\n'
        f'                    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id")),\n'
        f'                    sa.Column("v", sa.String(20), server_default="x"))\n'
        f'    op.create_index("ix_t{i}_v", "t{i}", ["v"])',
        f'    op.drop_index("ix_t{i}_v", table_name="t{i}")\n    op.drop_table("t{i}")',
    )


def _model(i: int) -> str:
    return (
        f'\nt{i} = sa.Table("t{i}", metadata, sa.Column("id", sa.Integer, primary_key=True),\n'
        f'               sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id")),\n'
        f'               sa.Column("v", sa.String(20), server_default="x"))\n'
        f'sa.Index("ix_t{i}_v", t{i}.c.v)\n'
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
    """main: the alembic project, no revision; feature: N revisions and their models."""
    git(repo, "init", "-q", "-b", "main")
    run([sys.executable, "-m", "alembic", "init", "alembic"], repo)
    ini = (repo / "alembic.ini").read_text()
    ini = ini.replace("driver://user:pass@localhost/dbname", url.replace("%", "%%"))
    ini = ini.replace("[logger_alembic]\nlevel = INFO", "[logger_alembic]\nlevel = WARNING")
    (repo / "alembic.ini").write_text(ini)
    env_py = repo / "alembic" / "env.py"
    text = env_py.read_text().replace(ENGINE_FROM_CONFIG, ENGINE_FROM_EITHER)
    text = text.replace("target_metadata = None", "from models import metadata as target_metadata")
    env_py.write_text(text)
    (repo / "models.py").write_text(MODELS_HEAD)
    (repo / "alembic" / "versions" / ".keep").write_text("")
    (repo / ".gitignore").write_text("app.db\n__pycache__/\ntests/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "alembic init")
    git(repo, "checkout", "-q", "-b", "feature")
    write(repo, "feature00000", None, USERS)
    down = "feature00000"
    for i in range(1, revisions):
        rev = f"feature{i:05d}"
        write(repo, rev, down, _step(i))
        down = rev
    models = MODELS_HEAD + MODEL_USERS + "".join(_model(i) for i in range(1, revisions))
    (repo / "models.py").write_text(models)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "feature")
    git(repo, "checkout", "-q", "main")


def engine_url_works(url: str) -> bool:
    try:
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        engine = create_engine(url, poolclass=NullPool)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001 - any failure: skip PostgreSQL
        return False


def pytest_alembic_ready(python: str | None) -> str | None:
    """Why pytest-alembic cannot be timed with ``python``; None when it can."""
    if python is None:
        return "not timed: give --pytest-alembic-python PATH (see this script's docstring)"
    probe = "import pytest, pytest_alembic; assert pytest.version_tuple < (9,), pytest.__version__"
    proc = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return f"not timed: {python} cannot run it ({last}); it needs pytest<9"
    return None


def drop_leftovers(url: str, prefix: str) -> None:
    """Drop the databases a killed pytest-alembic run left on ``url``'s server."""
    from sqlalchemy import create_engine, text

    server = create_engine(url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        names = conn.execute(
            text("SELECT datname FROM pg_database WHERE starts_with(datname, :prefix)"),
            {"prefix": prefix},
        ).scalars()
        for name in list(names):
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    server.dispose()


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = run(cmd, cwd, env)
    return time.perf_counter() - start, out


def _figures(times: list[float], n: int) -> str:
    best, med = min(times), statistics.median(times)
    return (
        f"best {best:.2f} s, median {med:.2f} s ({', '.join(f'{t:.2f}' for t in times)}); "
        f"{1000 * best / n:.0f} / {1000 * med / n:.0f} ms a revision"
    )


def bench(label: str, url: str, args: argparse.Namespace, branchmig: list[str]) -> None:
    n = args.revisions
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        repo = Path(tmp, "repo")
        repo.mkdir()
        build(repo, url, n)
        env = installed_like_env()
        verify = [*branchmig, "verify", "feature", "--against", "main"]
        palembic = [args.pytest_alembic_python or "", "-m", "pytest", "--test-alembic"]
        palembic += ["-p", "no:cacheprovider", "-q", "tests"]
        tree, prefix = Path(tmp, "feature"), f"bench_verify_{os.getpid()}"
        if args.pytest_alembic_python:
            git(repo, "worktree", "add", "-q", str(tree), "feature")
            (tree / "tests").mkdir()
            postgres = not url.startswith("sqlite")
            (tree / "tests" / "conftest.py").write_text(CONFTEST_POSTGRES if postgres else "")
            env_pa = {**env, "BENCH_ALEMBIC_URL": url, "BENCH_ALEMBIC_PREFIX": prefix}
        ours: list[float] = []
        theirs: list[float] = []
        try:
            for _ in range(args.rounds + 1):  # the first is a warm-up and a check
                took, out = timed(verify, repo, env)
                assert f"Verified {n} revisions" in out, out
                ours.append(took)
                if args.pytest_alembic_python:
                    took, out = timed(palembic, tree, env_pa)
                    assert f"{PYTEST_ALEMBIC_TESTS} passed" in out, out
                    theirs.append(took)
        finally:
            if args.pytest_alembic_python and not url.startswith("sqlite"):
                drop_leftovers(url, prefix)
        report(label, n, ours[1:], theirs[1:])


def report(label: str, n: int, ours: list[float], theirs: list[float]) -> None:
    print(f"{label:<11} verify of {n} revisions: {_figures(ours, n)}")
    if theirs:
        print(
            f"{'':<11} pytest-alembic's {PYTEST_ALEMBIC_TESTS} built-in tests, same revisions: "
            f"{_figures(theirs, n)}"
        )
        print(
            f"{'':<11} verify {min(theirs) / min(ours):.1f}x faster (best rounds), "
            f"{statistics.median(theirs) / statistics.median(ours):.1f}x (medians)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revisions", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--pytest-alembic-python",
        metavar="PATH",
        help="the python of a virtual environment holding pytest<9 and pytest-alembic",
    )
    args = parser.parse_args()
    bindir = Path(sys.executable).parent
    branchmig = (
        [str(bindir / "branchmig")]
        if (bindir / "branchmig").exists()
        else [sys.executable, "-m", "branchmig"]
    )
    why_not = pytest_alembic_ready(args.pytest_alembic_python)
    if why_not is not None:
        print(f"pytest-alembic: {why_not}")
        args.pytest_alembic_python = None
    print("process start included on both sides")
    bench("SQLite", "sqlite:///app.db", args, branchmig)
    if engine_url_works(POSTGRES_URL):
        # verify never opens this database: its scratch one is made beside it.
        bench("PostgreSQL", POSTGRES_URL, args, branchmig)
    else:
        print("PostgreSQL: skipped (not reachable; set BRANCHMIG_TEST_POSTGRES_URL)")


if __name__ == "__main__":
    main()
