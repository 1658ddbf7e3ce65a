"""Where people wait, in one run: each figure and its ratio, side by side.

Builds two real ``alembic init`` projects on SQLite in git repositories (in a temp dir):
1,500 revisions with two feature branches on top (bench_switch's), and 5,000 revisions
with branches and merges (bench_heads'). Then times, as a user runs them (new processes),
interleaving the two sides of each row so the machine's drift hits both alike:

- returning to a branch whose snapshot matches: ``git checkout`` with the hook (which
  restores it), against the manual cure ``alembic downgrade <common>`` + ``git checkout``
  + ``alembic upgrade heads``;
- a checkout that changes no migration: with the hooks, against none;
- ``branchmig switch``: against the manual cure;
- ``branchmig status`` against ``alembic current`` (5,000 revisions);
- ``branchmig heads`` warm against ``alembic heads`` (5,000 revisions), as this machine
  runs it (PYTHONDONTWRITEBYTECODE=1: the scripts compiled on every run, as many
  development machines run Alembic) and with the versions folder's bytecode written.

Both sides run from one virtual environment holding branchmig installed from its wheel
(``_common.installed_copy``), with bytecode written, as an installed copy of each has it.

    python benchmarks/bench_targets.py [--rounds 5] [--switch-revisions 1500]
                                       [--heads-revisions 5000]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bench_heads
import bench_switch
from _common import installed_copy
from bench_switch import FLOOR_IMPORTS


@dataclass(frozen=True)
class Commands:
    """The installed copy's commands."""

    branchmig: str
    alembic: list[str]

    @classmethod
    def of(cls, bindir: Path) -> Commands:
        return cls(str(bindir / "branchmig"), [str(bindir / "python"), "-m", "alembic"])


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def sh(cwd: Path, *args: str, env: dict[str, str]) -> None:
    proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")


def row(
    what: str,
    ours: list[float],
    theirs: list[float],
    against: str,
    target: float | None,
    *,
    overhead: bool = False,
) -> None:
    a, b = statistics.median(ours), statistics.median(theirs)
    if overhead:
        extra = (a - b) * 1000
        verdict = "met" if target is None or extra <= target else "MISSED"
        print(
            f"{what:<52} {a:7.3f}  {against:<34} {b:7.3f}  +{extra:5.1f} ms"
            f"   ≤ +{target:.0f} ms {verdict}"
        )
        return
    ratio = b / a
    verdict = "" if target is None else ("met" if ratio >= target else "MISSED")
    goal = f"≥ {target:.0f}×" if target is not None else ""
    print(f"{what:<52} {a:7.3f}  {against:<34} {b:7.3f}  {ratio:5.1f}×   {goal} {verdict}")


def switch_rows(tmp: Path, revisions: int, rounds: int, env: dict[str, str], cmd: Commands) -> None:
    branchmig, alembic = cmd.branchmig, cmd.alembic
    repo = tmp / "switch"
    repo.mkdir()
    print(f"building a {revisions}-revision history ...", file=sys.stderr)
    common = bench_switch.build(repo, revisions)
    git = bench_switch.git
    sh(repo, *alembic, "upgrade", "heads", env=env)
    (repo / "README").write_text("docs\n")
    git(repo, "checkout", "-q", "-b", "docs", "feature1")
    git(repo, "add", "README")
    git(repo, "commit", "-q", "-m", "docs only")
    git(repo, "checkout", "-q", "feature1")
    sh(repo, branchmig, "install", env=env)
    # The first trip each way saves each branch's snapshot; from then on every checkout
    # returns to a branch whose snapshot matches, and restores it.
    sh(repo, "git", "checkout", "-q", "feature2", env=env)
    sh(repo, "git", "checkout", "-q", "feature1", env=env)
    ret, manual, switch, manual2, manual3, noop, bare = [], [], [], [], [], [], []
    no_bytecode = {**env, "PYTHONDONTWRITEBYTECODE": "1"}
    pycache = repo / "alembic" / "versions" / "__pycache__"

    def by_hand(to: str, manual_env: dict[str, str]) -> None:
        sh(repo, *alembic, "downgrade", common, env=manual_env)
        sh(repo, "git", "checkout", "-q", to, env=manual_env)
        sh(repo, *alembic, "upgrade", "heads", env=manual_env)

    for _ in range(rounds):
        for to in ("feature2", "feature1"):
            ret.append(timed(lambda to=to: sh(repo, "git", "checkout", "-q", to, env=env)))
        sh(repo, branchmig, "uninstall", env=env)
        for to in ("feature2", "feature1"):
            manual.append(timed(lambda to=to: by_hand(to, env)))
        for manual_env, times in ((env, manual2), (no_bytecode, manual3)):
            # A switch there, the manual cure back: with the versions folder's bytecode
            # written, and as this machine runs Alembic (none written, as the issue timed).
            switch.append(
                timed(lambda: sh(repo, branchmig, "switch", "feature2", "--no-snapshot", env=env))
            )
            if manual_env is no_bytecode:
                shutil.rmtree(pycache, ignore_errors=True)
            times.append(timed(lambda e=manual_env: by_hand("feature1", e)))
            if manual_env is no_bytecode:
                sh(repo, *alembic, "heads", env=env)  # the bytecode back, for the rows above
        for to in ("docs", "feature1"):
            bare.append(
                timed(
                    lambda to=to: sh(
                        repo, "git", "-c", "core.hooksPath=/dev/null", "checkout", "-q", to, env=env
                    )
                )
            )
        sh(repo, branchmig, "install", env=env)
        for to in ("docs", "feature1"):
            noop.append(timed(lambda to=to: sh(repo, "git", "checkout", "-q", to, env=env)))
        sh(repo, branchmig, "sync", env=env)  # the database back at feature1's head
    row(
        f"return to a branch, snapshot restored ({revisions} revs)",
        ret,
        manual,
        "manual downgrade+checkout+upgrade",
        7,
    )
    row("checkout changing no migration (hooks)", noop, bare, "no hooks", 10, overhead=True)
    row(
        f"branchmig switch, no snapshot ({revisions} revs)",
        switch,
        manual3,
        "the manual cure, no bytecode written",
        3,
    )
    row(
        f"branchmig switch, no snapshot ({revisions} revs)",
        switch,
        manual2,
        "manual downgrade+checkout+upgrade",
        None,
    )
    python = alembic[0]
    floor = [timed(lambda: sh(repo, python, "-c", FLOOR_IMPORTS, env=env)) for _ in range(rounds)]
    print(
        f"  floor of a switch: importing Alembic and SQLAlchemy {statistics.median(floor):.3f} s "
        f"(the manual cure pays it twice): at most "
        f"{statistics.median(manual2) / statistics.median(floor):.1f}x against it with bytecode"
    )


def status_and_heads_rows(
    tmp: Path, revisions: int, rounds: int, env: dict[str, str], cmd: Commands
) -> None:
    branchmig, alembic = cmd.branchmig, cmd.alembic
    repo = tmp / "heads"
    print(f"building a {revisions}-revision history ...", file=sys.stderr)
    bench_heads.build(repo, revisions)
    ini = repo / "alembic.ini"
    ini.write_text(
        ini.read_text().replace("driver://user:pass@localhost/dbname", "sqlite:///app.db")
    )
    (repo / ".gitignore").write_text("app.db\n")
    sh(repo, *alembic, "stamp", "heads", env=env)  # marks the database at the heads
    sh(repo, branchmig, "heads", env=env)  # warms the header cache
    # As this machine (and CI) runs Alembic: PYTHONDONTWRITEBYTECODE=1, so the versions
    # folder has no bytecode and each run compiles the 5,000 scripts.
    no_bytecode = {**env, "PYTHONDONTWRITEBYTECODE": "1"}
    pycache = repo / "alembic" / "versions" / "__pycache__"
    status, current, heads, alembic_heads, compiling = [], [], [], [], []
    for _ in range(rounds):
        status.append(timed(lambda: sh(repo, branchmig, "status", env=env)))
        current.append(timed(lambda: sh(repo, *alembic, "current", env=env)))
        heads.append(timed(lambda: sh(repo, branchmig, "heads", env=env)))
        alembic_heads.append(timed(lambda: sh(repo, *alembic, "heads", env=env)))
        shutil.rmtree(pycache, ignore_errors=True)
        compiling.append(timed(lambda: sh(repo, *alembic, "heads", env=no_bytecode)))
        sh(repo, *alembic, "heads", env=env)  # its bytecode back, for the row above
    row(f"branchmig status ({revisions} revs)", status, current, "alembic current", 20)
    row(
        f"branchmig heads, warm ({revisions} revs)",
        heads,
        compiling,
        "alembic heads, no bytecode written",
        20,
    )
    row(f"branchmig heads, warm ({revisions} revs)", heads, alembic_heads, "alembic heads", None)
    # What any `heads` run pays however little it does: the interpreter, the modules that
    # read a remembered answer (a warm `heads` loads no click), and a stat of every
    # script (their stats are what tells the remembered answer still holds).
    python = cmd.alembic[0]
    start, modules, stats = [], [], []
    load = "import branchmig.analysis, branchmig.workspace"
    scan = "import os; [e.stat() for e in os.scandir('alembic/versions') if e.name.endswith('.py')]"
    for _ in range(rounds):
        start.append(timed(lambda: sh(repo, python, "-c", "pass", env=env)))
        modules.append(timed(lambda: sh(repo, python, "-c", load, env=env)))
        stats.append(timed(lambda: sh(repo, python, "-c", scan, env=env)))
    s, m, t = (statistics.median(x) for x in (start, modules, stats))
    floor = m + t - s
    print(
        f"  floor of a `heads` run: Python's start {s * 1000:.0f} ms, + branchmig's modules "
        f"{(m - s) * 1000:.0f} ms, + a stat of the {revisions} scripts {(t - s) * 1000:.0f} ms"
        f" = {floor * 1000:.0f} ms: at most {statistics.median(alembic_heads) / floor:.1f}x "
        "against alembic heads with its bytecode"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--switch-revisions", type=int, default=1500)
    parser.add_argument("--heads-revisions", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-targets-") as tmp:
        print("installing branchmig's wheel into a fresh environment ...", file=sys.stderr)
        bindir, env = installed_copy(Path(tmp))
        cmd = Commands.of(bindir)
        print(f"{'what':<52} {'s':>7}  {'against':<34} {'s':>7}  ratio   target")
        switch_rows(Path(tmp), args.switch_revisions, args.rounds, env, cmd)
        status_and_heads_rows(Path(tmp), args.heads_revisions, args.rounds, env, cmd)
    print("medians of --rounds runs; ratios are the other side's time over branchmig's")


if __name__ == "__main__":
    main()
