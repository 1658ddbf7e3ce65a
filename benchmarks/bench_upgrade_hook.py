"""An upgrade-only ``git checkout`` on PostgreSQL: the hook against doing it by hand.

A checkout whose only migration step is an upgrade, with the hooks installed, against
``git checkout`` (no hooks) + ``alembic upgrade head``. The hook saves the database first
(all or nothing) and keeps that copy as the left branch's snapshot: the copy is the
floor, printed on its own
(``CREATE DATABASE … TEMPLATE``, as the PostgreSQL backend makes it), and so is the hook
with ``snapshots = "never"``.

Builds (in a temp folder) a real ``alembic init`` project in a git repository on a new
PostgreSQL database (``BRANCHMIG_TEST_POSTGRES_URL``, a role that may create databases;
the database and its snapshots are dropped at the end): main holds N revisions (default
30) and ``--rows`` rows, branch ``up`` one more revision. Each round moves main → up
(timed), then back and drops the snapshots (untimed). Both sides run from one installed
copy of branchmig (``_common.installed_copy``).

    python benchmarks/bench_upgrade_hook.py [--revisions 30] [--rows 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
from _common import installed_copy
from bench_switch import SCRIPT, git, run
from psycopg import sql
from sqlalchemy.engine import make_url

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    u = make_url(url)
    return psycopg.connect(
        host=u.host,
        port=u.port,
        user=u.username,
        password=u.password,
        dbname=u.database,
        autocommit=True,
    )


def build(repo: Path, url: str, revisions: int, python: str) -> None:
    git(repo, "init", "-q", "-b", "main")
    run([python, "-m", "alembic", "init", "alembic"], repo)
    ini = (repo / "alembic.ini").read_text()
    ini = ini.replace("driver://user:pass@localhost/dbname", url.replace("%", "%%"))
    ini = ini.replace("[logger_alembic]\nlevel = INFO", "[logger_alembic]\nlevel = WARNING")
    (repo / "alembic.ini").write_text(ini)
    (repo / ".gitignore").write_text("__pycache__/\n")
    versions = repo / "alembic" / "versions"
    down = None
    for i in range(revisions + 1):
        if i == revisions:
            git(repo, "add", "-A")
            git(repo, "commit", "-q", "-m", "history")
            git(repo, "checkout", "-q", "-b", "up")
        rev = f"{i:012x}"
        (versions / f"{rev}_step_{i}.py").write_text(SCRIPT.format(i=i, rev=rev, down=down))
        down = rev
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "up: one more")
    git(repo, "checkout", "-q", "main")


def drop_all(server: str, name: str) -> None:
    with connect(server) as conn:
        for (datname,) in conn.execute("SELECT datname FROM pg_database").fetchall():
            if datname == name or datname.startswith(f"{name}__bm_"):
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(datname)
                    )
                )


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revisions", type=int, default=30)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = os.environ.get("BRANCHMIG_TEST_POSTGRES_URL", DEFAULT_URL)
    name = f"bmbench_{uuid.uuid4().hex[:10]}"
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    with connect(server) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with tempfile.TemporaryDirectory(prefix="bench-upgrade-hook-") as tmp:
            bindir, env = installed_copy(Path(tmp))
            python, branchmig = str(bindir / "python"), str(bindir / "branchmig")
            repo = Path(tmp) / "repo"
            repo.mkdir()
            build(repo, url, args.revisions, python)
            run([python, "-m", "alembic", "upgrade", "head"], repo, env)
            with connect(url) as conn:
                conn.execute(
                    "INSERT INTO t0 (v) SELECT 'row ' || g FROM generate_series(1, %s) g",
                    (args.rows,),
                )
            run([branchmig, "install"], repo, env)
            rows = measure(repo, branchmig, python, env, url, args.rounds)
    finally:
        drop_all(server, name)
    report(rows, args)


def measure(
    repo: Path, branchmig: str, python: str, env: dict[str, str], url: str, rounds: int
) -> dict[str, list[float]]:
    no_hooks = ["-c", f"core.hooksPath={repo / 'no-hooks'}"]
    pyproject = repo / "pyproject.toml"

    def forget_snapshots() -> None:
        listed = json.loads(run([branchmig, "snapshot", "list", "--json"], repo, env))
        for snap in listed["snapshots"]:
            run([branchmig, "snapshot", "drop", snap["key"]], repo, env)

    def by_hand() -> None:
        git(repo, *no_hooks, "checkout", "-q", "up")
        run([python, "-m", "alembic", "upgrade", "head"], repo, env)

    def by_hand_back() -> None:
        run([python, "-m", "alembic", "downgrade", "-1"], repo, env)
        git(repo, *no_hooks, "checkout", "-q", "main")
        run([branchmig, "sync"], repo, env)  # branchmig's record: the database is main's

    def hook(mode: str) -> Callable[[], None]:
        def go() -> None:
            pyproject.write_text(f'[tool.branchmig]\nsnapshots = "{mode}"\n')
            git(repo, "checkout", "-q", "up")

        return go

    def hook_back() -> None:
        git(repo, "checkout", "-q", "main")
        forget_snapshots()

    def copy_alone() -> None:
        with connect(url) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY WAL_LOG").format(
                    sql.Identifier(f"{make_url(url).database}__bm_bench"),
                    sql.Identifier(str(make_url(url).database)),
                )
            )

    def copy_back() -> None:
        with connect(url) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE {}").format(
                    sql.Identifier(f"{make_url(url).database}__bm_bench")
                )
            )

    methods: list[tuple[str, Callable[[], None], Callable[[], None]]] = [
        ("by hand: git checkout + alembic upgrade head", by_hand, by_hand_back),
        ("git checkout, hook (snapshots auto)", hook("auto"), hook_back),
        ("git checkout, hook (snapshots never)", hook("never"), hook_back),
        ("floor: the safety copy alone (CREATE DATABASE TEMPLATE)", copy_alone, copy_back),
    ]
    results: dict[str, list[float]] = {m: [] for m, _, _ in methods}
    for n in range(rounds + 1):  # the first round warms up, untimed
        for label, forward, back in methods:
            seconds = timed(forward)
            back()
            if n:
                results[label].append(seconds)
            else:
                print(f"  warm-up: {label}: {seconds:.2f} s", file=sys.stderr)
    pyproject.unlink(missing_ok=True)
    return results


def report(results: dict[str, list[float]], args: argparse.Namespace) -> None:
    print(
        f"\nupgrade-only checkout on PostgreSQL ({args.revisions} revisions, {args.rows} rows; "
        f"median of {args.rounds})"
    )
    base = statistics.median(results["by hand: git checkout + alembic upgrade head"])
    print(f"{'method':<58} {'median':>8} {'vs by hand':>11}")
    for label, times in results.items():
        med = statistics.median(times)
        print(f"{label:<58} {med:>7.3f}s {med / base:>10.2f}x")
    hooked = statistics.median(results["git checkout, hook (snapshots auto)"])
    bare = statistics.median(results["git checkout, hook (snapshots never)"])
    copy = statistics.median(results["floor: the safety copy alone (CREATE DATABASE TEMPLATE)"])
    verdict = "met" if hooked <= 1.10 * base else "MISSED"
    print(
        f"target: the hook within 10 % of by hand: {verdict} ({hooked / base:.2f}x). The "
        f"copy alone costs {1000 * copy:.0f} ms; the hook without it "
        f"{bare / base:.2f}x, so with it the floor is {(bare + copy) / base:.2f}x"
    )


if __name__ == "__main__":
    main()
