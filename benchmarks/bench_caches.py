"""What each of branchmig's on-disk caches saves, command by command.

Builds (in a temp dir) the history of ``bench_heads.py`` with a SQLite database at its
head, then times real commands (new processes) with each cache present ("on") and with
only that cache's files removed just before the run ("off": the run rebuilds them, as a
first run after a clone or an upgrade of branchmig does). On and off runs alternate, so
the machine's drift hits both alike; medians are printed:

    python benchmarks/bench_caches.py [--revisions 1500] [--rounds 7]

A cache that saves under 5 ms on every command that uses it is a candidate for removal
(issue 23, "one home for what is remembered").
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench_heads import BIN, ENV, build, run

# Each cache: the files under .git/branchmig that hold it, and those removed before both
# runs (the header cache only matters where no script set matches: a commit not seen yet).
CACHES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "heads memo (cache/heads.json)": (("cache/heads.json",), ()),
    "script sets (cache/script-sets/)": (("cache/script-sets",), ()),
    "headers + stats (cache/headers.json)": (("cache/headers.json",), ()),
    "headers + stats, no script set": (
        ("cache/headers.json",),
        ("cache/script-sets", "cache/heads.json"),
    ),
    "remembered database (remembered/)": (("remembered",), ()),
}
COMMANDS = {
    "heads (working tree)": ("heads",),
    "heads HEAD": ("heads", "HEAD"),
    "plan HEAD feature": ("plan", "HEAD", "feature"),
    "status": ("status",),
    "sync (nothing to do)": ("sync",),
}
# Which cache each command can use at all (the others are not timed for it).
USES = {
    "heads memo (cache/heads.json)": ("heads (working tree)", "heads HEAD"),
    "remembered database (remembered/)": ("status", "sync (nothing to do)"),
    "headers + stats, no script set": ("heads (working tree)", "heads HEAD", "status"),
}


def setup(root: Path, count: int) -> None:
    build(root, count)
    ini = root / "alembic.ini"
    ini.write_text(
        ini.read_text().replace(
            "sqlalchemy.url = driver://user:pass@localhost/dbname",
            "sqlalchemy.url = sqlite:///app.db",
        )
    )
    (root / ".gitignore").write_text("app.db\n")
    git = ("git", "-C", str(root))
    subprocess.run([*git, "commit", "-qam", "sqlite"], env=ENV, check=True)
    subprocess.run([*git, "add", ".gitignore"], env=ENV, check=True)
    subprocess.run([*git, "commit", "-qm", "ignore"], env=ENV, check=True)
    subprocess.run([*git, "branch", "feature", "HEAD~2"], env=ENV, check=True)
    run(root, str(BIN / "alembic"), "upgrade", "heads")
    time.sleep(2.5)  # past the racy window: the scripts' stats can be trusted
    for args in COMMANDS.values():  # warm every cache
        run(root, str(BIN / "branchmig"), *args)


def remove(state: Path, rels: tuple[str, ...]) -> None:
    for rel in rels:
        target = state / rel
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)


def in_process(root: Path, state: Path, rounds: int) -> None:
    """The script sets and the header cache timed inside one process (a new Workspace
    each time, as each command opens one): what they save, without the noise of a
    process start."""
    from branchmig.workspace import Workspace

    def once(ref: str, removed: tuple[str, ...]) -> float:
        remove(state, removed)
        ws = Workspace.open(root)
        try:
            start = time.perf_counter()
            ws.scripts_at(ref)
            return time.perf_counter() - start
        finally:
            ws.close()

    sets, headers = ("cache/script-sets",), ("cache/headers.json",)
    rows = {
        "script sets": ((), sets),
        "headers + stats, no script set": (sets, (*sets, *headers)),
    }
    for name, (on_removed, off_removed) in rows.items():
        for label, ref in (("working tree", ""), ("HEAD", "HEAD")):
            on, off = [], []
            for _ in range(rounds):
                on.append(once(ref, on_removed))
                off.append(once(ref, off_removed))
                once(ref, ())  # put every cache back
            a, b = statistics.median(on) * 1000, statistics.median(off) * 1000
            print(f"{name:<40} {label:<22} {a:>7.1f} {b:>7.1f} {b - a:>9.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revisions", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--in-process-only", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="branchmig-bench-caches-"))
    root = tmp / "project"
    state = root / ".git" / "branchmig"
    try:
        setup(root, args.revisions)
        print(f"{args.revisions} revisions, medians of {args.rounds} alternated on/off runs")
        print(f"{'cache':<40} {'command':<22} {'on ms':>7} {'off ms':>7} {'saves ms':>9}")
        for cache, (files, before) in () if args.in_process_only else CACHES.items():
            for command, argv in COMMANDS.items():
                if command not in USES.get(cache, COMMANDS):
                    continue
                on, off = [], []
                for _ in range(args.rounds):
                    remove(state, before)
                    on.append(run(root, str(BIN / "branchmig"), *argv))
                    remove(state, (*before, *files))
                    off.append(run(root, str(BIN / "branchmig"), *argv))
                a, b = statistics.median(on) * 1000, statistics.median(off) * 1000
                print(f"{cache:<40} {command:<22} {a:>7.1f} {b:>7.1f} {b - a:>9.1f}", flush=True)
        print("\nin one process: Workspace.scripts_at(ref)")
        print(f"{'cache':<40} {'ref':<22} {'on ms':>7} {'off ms':>7} {'saves ms':>9}")
        in_process(root, state, args.rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
