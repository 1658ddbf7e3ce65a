"""What branchmig's hooks cost a checkout that changes no migrations.

Three identical throwaway repositories: one without hooks, one with branchmig's hooks, and
one whose post-checkout is an empty sh script (what git's starting any hook costs, the
floor for a hook written in sh). Each round checks out commit A then commit B in all three,
interleaved so that drift in the machine's load hits them alike; A and B differ outside the
watched paths only. The hooks record a stand-in for
Python that logs every start, to show that the no-op path never started it.

    python benchmarks/bench_hook_noop.py [--rounds 200] [--files 300]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from branchmig import hooks

TARGET_MS = 10.0


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def make_repo(path: Path, files: int) -> tuple[str, str]:
    git(path.parent, "init", "-q", "-b", "main", str(path))
    versions = path / "migrations" / "versions"
    versions.mkdir(parents=True)
    (path / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    for i in range(files):
        (versions / f"{i:04d}_rev.py").write_text(f"revision = 'r{i}'\n")
        (path / "app" / f"m{i // 50}").mkdir(parents=True, exist_ok=True)
        (path / "app" / f"m{i // 50}" / f"f{i}.py").write_text(f"x = {i}\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "A")
    commit_a = git(path, "rev-parse", "HEAD")
    (path / "app" / "m0" / "f0.py").write_text("x = 'changed'\n")
    git(path, "commit", "-q", "-am", "B")
    return commit_a, git(path, "rev-parse", "HEAD")


def timed_checkout(repo: Path, commit: str) -> float:
    start = time.perf_counter()
    subprocess.run(["git", "checkout", "-q", commit], cwd=repo, check=True)
    return time.perf_counter() - start


def report(label: str, seconds: list[float]) -> None:
    mean = statistics.fmean(seconds) * 1000
    median = statistics.median(seconds) * 1000
    print(f"{label:<16} mean {mean:7.2f} ms   median {median:7.2f} ms   (per checkout)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="A/B round trips (default 200)")
    parser.add_argument("--files", type=int, default=300, help="migration scripts (default 300)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-hook-noop-") as tmp:
        root = Path(tmp)
        plain, hooked, trivial = root / "plain", root / "hooked", root / "trivial"
        commits = make_repo(plain, args.files)
        git(root, "clone", "-q", str(plain), str(hooked))
        git(root, "clone", "-q", str(plain), str(trivial))
        empty_hook = trivial / ".git" / "hooks" / "post-checkout"
        empty_hook.write_text("#!/bin/sh\nexit 0\n")
        empty_hook.chmod(0o755)
        log = root / "python-starts.log"
        fake_python = root / "fake-python"
        fake_python.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n')
        fake_python.chmod(0o755)
        hooks.install(
            repo_root=hooked, python=str(fake_python), watch=["migrations", "alembic.ini"]
        )

        repos = (plain, hooked, trivial)
        times: dict[Path, list[float]] = {repo: [] for repo in repos}
        for repo in repos:  # warm up the page cache and git's index
            for commit in commits * 5:
                timed_checkout(repo, commit)
        for _ in range(args.rounds):
            for commit in commits:
                for repo in repos:
                    times[repo].append(timed_checkout(repo, commit))

        starts = len(log.read_text().splitlines()) if log.exists() else 0

    git_version = git(Path.cwd(), "--version")
    print(f"{args.rounds} round trips = {2 * args.rounds} checkouts each; {git_version}")
    report("without hooks", times[plain])
    report("empty sh hook", times[trivial])
    report("with hooks", times[hooked])
    mean_overhead = (statistics.fmean(times[hooked]) - statistics.fmean(times[plain])) * 1000
    median_overhead = (statistics.median(times[hooked]) - statistics.median(times[plain])) * 1000
    verdict = "ok" if mean_overhead <= TARGET_MS else "OVER TARGET"
    print(
        f"overhead         mean {mean_overhead:7.2f} ms   median {median_overhead:7.2f} ms"
        f"   target <= {TARGET_MS:.0f} ms: {verdict}"
    )
    print(f"Python started by the hooks: {starts} times (expected 0)")
    return 0 if mean_overhead <= TARGET_MS and starts == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
