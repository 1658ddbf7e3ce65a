"""A switch between two branches of a long history: branchmig against the manual cure.

Builds (in a temp folder) a real ``alembic init`` project on SQLite in a git repository
whose main branch holds N revisions (default 1,500), with feature1 and feature2 each
adding one revision on top. Then times, from feature1 with the database at its head:

- manual: ``alembic downgrade <common>``, ``git checkout feature2``, ``alembic upgrade heads``
  (and back), as the Alembic docs tell users to do;
- ``branchmig switch feature2`` (and back), with and without snapshots, and rehearsed.

Prints the medians and the ratio against the target (branchmig ≥ 3× faster).

    python benchmarks/bench_switch.py [--revisions 1500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import installed_like_env

SCRIPT = '''"""step {i}

Revision ID: {rev}
Revises: {down}
Create Date: 2024-01-01 00:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = {rev!r}
down_revision: Union[str, Sequence[str], None] = {down!r}
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table("t{i}", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("v", sa.String(20)))


def downgrade() -> None:
    op.drop_table("t{i}")
'''


# Loads Alembic as a switch does (on its thread, without Mako's Pygments plugin) and ends
# as branchmig does, without the interpreter's teardown.
FLOOR_IMPORTS = (
    "import branchmig.cli, branchmig.dbcli, branchmig.runner, os; "
    "import branchmig.alembicenv as r; "
    "r.start_loading_alembic(); r._loading.join(); "
    "import alembic.context, sqlalchemy; os._exit(0)"
)


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def git(repo: Path, *args: str) -> str:
    return run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", *args], repo
    )


def write(repo: Path, i: int, rev: str, down: str | None) -> None:
    (repo / "alembic" / "versions" / f"{rev}_step_{i}.py").write_text(
        SCRIPT.format(i=i, rev=rev, down=down)
    )


def build(repo: Path, revisions: int) -> str:
    git(repo, "init", "-q", "-b", "main")
    run([sys.executable, "-m", "alembic", "init", "alembic"], repo)
    ini = (repo / "alembic.ini").read_text()
    ini = ini.replace("driver://user:pass@localhost/dbname", "sqlite:///app.db")
    ini = ini.replace("[logger_alembic]\nlevel = INFO", "[logger_alembic]\nlevel = WARNING")
    (repo / "alembic.ini").write_text(ini)
    (repo / ".gitignore").write_text("app.db\n__pycache__/\n")
    down = None
    for i in range(revisions):
        rev = f"{i:012x}"
        write(repo, i, rev, down)
        down = rev
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "history")
    common = down
    assert common is not None
    for branch, i in (("feature1", revisions), ("feature2", revisions + 1)):
        git(repo, "checkout", "-q", "-b", branch, "main")
        write(repo, i, f"{branch}0000", common)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", branch)
    git(repo, "checkout", "-q", "feature1")
    return common


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revisions", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    bindir = Path(sys.executable).parent
    alembic = [sys.executable, "-m", "alembic"]
    branchmig = (
        [str(bindir / "branchmig")]
        if (bindir / "branchmig").exists()
        else [sys.executable, "-m", "branchmig"]
    )
    with tempfile.TemporaryDirectory(prefix="bench-switch-") as tmp:
        repo = Path(tmp)
        print(f"building a {args.revisions}-revision history ...", file=sys.stderr)
        common = build(repo, args.revisions)
        env = installed_like_env()  # for both sides: Alembic keeps its scripts' bytecode
        run([*alembic, "upgrade", "heads"], repo, env)

        def by_hand(alembic_env: dict[str, str]) -> Callable[[str, str], None]:
            def go(to: str, here: str) -> None:
                del here
                run([*alembic, "downgrade", common], repo, alembic_env)
                git(repo, "checkout", "-q", to)
                run([*alembic, "upgrade", "heads"], repo, alembic_env)

            return go

        manual = by_hand(env)
        methods: list[tuple[str, Callable[[str, str], None]]] = [
            ("manual alembic downgrade + checkout + upgrade", manual)
        ]
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):
            # As this machine's environment runs Alembic: every script recompiled.
            methods.append(
                ("  the same, PYTHONDONTWRITEBYTECODE set here", by_hand(dict(os.environ)))
            )

        def ours(extra: list[str]) -> Callable[[str, str], None]:
            def go(to: str, here: str) -> None:
                del here
                run([*branchmig, "switch", to, *extra], repo, env)

            return go

        def floor(to: str, here: str) -> None:
            # What every switch must load before it can run a migration through env.py:
            # the interpreter, click and branchmig's modules, Alembic and SQLAlchemy.
            del to, here
            run([sys.executable, "-c", FLOOR_IMPORTS], repo, env)

        results: dict[str, list[float]] = {}
        methods += [
            ("branchmig switch --no-snapshot", ours(["--no-snapshot"])),
            ("branchmig switch (snapshots on)", ours([])),
            # Without snapshots: with them, the way back restores a snapshot and is
            # not rehearsed (a failure there puts both databases back anyway).
            ("branchmig switch --rehearse --no-snapshot", ours(["--rehearse", "--no-snapshot"])),
            ("floor: a process that only imports what a switch needs", floor),
        ]
        # One untimed round first: Alembic's bytecode of the scripts is written already
        # (the upgrade above), and branchmig's first switch in a repository keeps a copy of
        # every applied script and caches the headers, once.
        for name, fn in methods:
            print(
                f"  warm-up: {name}: {timed(functools.partial(fn, 'feature2', 'feature1')):.2f}"
                f" s, then {timed(functools.partial(fn, 'feature1', 'feature2')):.2f} s",
                file=sys.stderr,
            )
        # Rounds interleave the methods, so a slow spell of the machine weighs on all.
        for name, _ in methods:
            results[name] = []
        for _ in range(args.rounds):
            for name, fn in methods:
                results[name].append(timed(functools.partial(fn, "feature2", "feature1")))
                results[name].append(timed(functools.partial(fn, "feature1", "feature2")))
        for name, times in results.items():
            print(
                f"  {name}: median {statistics.median(times):.2f} s "
                f"({', '.join(f'{t:.2f}' for t in times)})",
                file=sys.stderr,
            )
        base = statistics.median(results["manual alembic downgrade + checkout + upgrade"])
        print(
            f"\nswitch between two branches of a {args.revisions}-revision history "
            f"(SQLite, median of {2 * args.rounds})"
        )
        print(f"{'method':<50} {'median':>8} {'vs manual':>10}")
        for name, times in results.items():
            med = statistics.median(times)
            print(f"{name:<50} {med:>7.2f}s {base / med:>9.1f}x")
        print(
            "target: branchmig switch >= 3x faster than the manual cure (Alembic with its "
            "bytecode cached is the stricter baseline)"
        )
        spent = statistics.median(results["branchmig switch --no-snapshot"])
        least = statistics.median(results["floor: a process that only imports what a switch needs"])
        print(
            f"the floor caps the ratio at {base / least:.1f}x; branchmig's own work (git, "
            f"plan, two env.py runs, the migrations) adds {1000 * (spent - least):.0f} ms"
        )
        rehearsed = statistics.median(results["branchmig switch --rehearse --no-snapshot"])
        print(
            f"a rehearsal adds {1000 * (rehearsed - spent):.0f} ms to a switch "
            "(the copy, env.py pointed at it, the plan run there)"
        )


if __name__ == "__main__":
    main()
