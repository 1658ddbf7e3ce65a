"""Where people wait, in one run: each figure of issue 15 and its ratio, side by side.

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
- ``branchmig heads`` warm against ``alembic heads`` (5,000 revisions).

Both sides run with bytecode written (as an installed copy of each has it).

    python benchmarks/bench_targets.py [--rounds 5] [--switch-revisions 1500]
                                       [--heads-revisions 5000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import bench_heads
import bench_switch
from _common import installed_like_env

BIN = Path(sys.executable).parent
BRANCHMIG = str(BIN / "branchmig")
ALEMBIC = [sys.executable, "-m", "alembic"]


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


def switch_rows(tmp: Path, revisions: int, rounds: int, env: dict[str, str]) -> None:
    repo = tmp / "switch"
    repo.mkdir()
    print(f"building a {revisions}-revision history ...", file=sys.stderr)
    common = bench_switch.build(repo, revisions)
    git = bench_switch.git
    sh(repo, *ALEMBIC, "upgrade", "heads", env=env)
    (repo / "README").write_text("docs\n")
    git(repo, "checkout", "-q", "-b", "docs", "feature1")
    git(repo, "add", "README")
    git(repo, "commit", "-q", "-m", "docs only")
    git(repo, "checkout", "-q", "feature1")
    sh(repo, BRANCHMIG, "install", env=env)
    # The first trip each way saves each branch's snapshot; from then on every checkout
    # returns to a branch whose snapshot matches, and restores it.
    sh(repo, "git", "checkout", "-q", "feature2", env=env)
    sh(repo, "git", "checkout", "-q", "feature1", env=env)
    ret, manual, switch, manual2, noop, bare = [], [], [], [], [], []
    for _ in range(rounds):
        for to in ("feature2", "feature1"):
            ret.append(timed(lambda to=to: sh(repo, "git", "checkout", "-q", to, env=env)))
        sh(repo, BRANCHMIG, "uninstall", env=env)
        for to in ("feature2", "feature1"):

            def by_hand(to: str = to) -> None:
                sh(repo, *ALEMBIC, "downgrade", common, env=env)
                sh(repo, "git", "checkout", "-q", to, env=env)
                sh(repo, *ALEMBIC, "upgrade", "heads", env=env)

            manual.append(timed(by_hand))
        for _ in range(2):  # a switch there, the manual cure back
            switch.append(
                timed(lambda: sh(repo, BRANCHMIG, "switch", "feature2", "--no-snapshot", env=env))
            )
            manual2.append(timed(lambda: by_hand("feature1")))
        for to in ("docs", "feature1"):
            bare.append(
                timed(
                    lambda to=to: sh(
                        repo, "git", "-c", "core.hooksPath=/dev/null", "checkout", "-q", to, env=env
                    )
                )
            )
        sh(repo, BRANCHMIG, "install", env=env)
        for to in ("docs", "feature1"):
            noop.append(timed(lambda to=to: sh(repo, "git", "checkout", "-q", to, env=env)))
        sh(repo, BRANCHMIG, "sync", env=env)  # the database back at feature1's head
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
        manual2,
        "manual downgrade+checkout+upgrade",
        3,
    )


def status_and_heads_rows(tmp: Path, revisions: int, rounds: int, env: dict[str, str]) -> None:
    repo = tmp / "heads"
    print(f"building a {revisions}-revision history ...", file=sys.stderr)
    bench_heads.build(repo, revisions)
    ini = repo / "alembic.ini"
    ini.write_text(
        ini.read_text().replace("driver://user:pass@localhost/dbname", "sqlite:///app.db")
    )
    (repo / ".gitignore").write_text("app.db\n")
    sh(repo, *ALEMBIC, "stamp", "heads", env=env)  # marks the database at the heads
    sh(repo, BRANCHMIG, "heads", env=env)  # warms the header cache
    status, current, heads, alembic_heads = [], [], [], []
    for _ in range(rounds):
        status.append(timed(lambda: sh(repo, BRANCHMIG, "status", env=env)))
        current.append(timed(lambda: sh(repo, *ALEMBIC, "current", env=env)))
        heads.append(timed(lambda: sh(repo, BRANCHMIG, "heads", env=env)))
        alembic_heads.append(timed(lambda: sh(repo, *ALEMBIC, "heads", env=env)))
    row(f"branchmig status ({revisions} revs)", status, current, "alembic current", 20)
    row(f"branchmig heads, warm ({revisions} revs)", heads, alembic_heads, "alembic heads", 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--switch-revisions", type=int, default=1500)
    parser.add_argument("--heads-revisions", type=int, default=5000)
    args = parser.parse_args()
    env = installed_like_env()
    with tempfile.TemporaryDirectory(prefix="bench-targets-") as tmp:
        print(f"{'what':<52} {'s':>7}  {'against':<34} {'s':>7}  ratio   target")
        switch_rows(Path(tmp), args.switch_revisions, args.rounds, env)
        status_and_heads_rows(Path(tmp), args.heads_revisions, args.rounds, env)
    print("medians of --rounds runs; ratios are the other side's time over branchmig's")


if __name__ == "__main__":
    main()
