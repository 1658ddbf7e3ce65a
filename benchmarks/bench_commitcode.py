"""What serving a commit's modules adds to a revert phase (``branchmig.commitcode``).

Builds (in a temp folder) a git repository whose ``app/migrations/versions`` holds N
scripts and a helper beside env.py, with a branch ``gone`` deleted after changing one
script (its commit left in the HEAD reflog only). Then times, in this process, best of
``--rounds``:

- finding the commit that holds the reverted script: the previous HEAD first (the hook's
  case), and through every ref and reflog entry (a deleted branch's);
- entering and leaving the finder around a phase;
- one import the commit has nothing for (what every other import of the phase pays), at
  the top level and in a package of the repository.

    python benchmarks/bench_commitcode.py [--scripts 300] [--rounds 20]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from branchmig.commitcode import _Finder, code_at, commit_holding, importable
from branchmig.graph import Revision
from branchmig.workspace import Workspace


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def build(repo: Path, scripts: int) -> None:
    git(repo, "init", "-q", "-b", "main")
    versions = repo / "app" / "migrations" / "versions"
    versions.mkdir(parents=True)
    (repo / "app" / "__init__.py").write_text("")
    (repo / "app" / "migrations" / "utils.py").write_text("MARK = 'main'\n")
    (repo / "alembic.ini").write_text("[alembic]\nscript_location = app/migrations\n")
    for i in range(scripts):
        (versions / f"v{i}.py").write_text(f"revision = 'v{i}'\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "history")
    git(repo, "checkout", "-q", "-b", "gone")
    (versions / "v0.py").write_text("revision = 'v0'  # changed on gone\n")
    git(repo, "commit", "-q", "-am", "gone")
    git(repo, "checkout", "-q", "main")
    git(repo, "branch", "-q", "-D", "gone")


def best_ms(fn: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scripts", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-commitcode-") as tmp:
        repo = Path(tmp)
        build(repo, args.scripts)
        ws = Workspace.open(repo)
        head = ws.repo.head_commit()
        assert head is not None
        path = "app/migrations/versions/v0.py"
        on_main = Revision("v0", path=path, blob=git(repo, "rev-parse", f"{head}:{path}").strip())
        gone = git(repo, "rev-parse", "HEAD@{1}").strip()
        on_gone = Revision("v0", path=path, blob=git(repo, "rev-parse", f"{gone}:{path}").strip())
        found = commit_holding(ws.repo, [on_gone])
        assert found == gone, found
        code = code_at(ws, gone)
        assert code is not None
        finder = _Finder(code)
        sys.path.insert(0, str(repo))
        finder.find_spec("warm", None)
        n = 2000
        start = time.perf_counter()
        for i in range(n):
            finder.find_spec(f"nosuch{i}", None)
        top_us = (time.perf_counter() - start) / n * 1e6
        start = time.perf_counter()
        for i in range(n):
            finder.find_spec(f"app.nosuch{i}", [str(repo / "app")])
        in_app_us = (time.perf_counter() - start) / n * 1e6

        def phase() -> None:
            with importable(code):
                pass

        at_head = best_ms(lambda: commit_holding(ws.repo, [on_main], first=[head]), args.rounds)
        in_reflog = best_ms(lambda: commit_holding(ws.repo, [on_gone]), args.rounds)
        rows = [
            ("commit holding the script: the previous HEAD first (ms)", f"{at_head:.2f}"),
            ("commit holding the script: through refs and reflog (ms)", f"{in_reflog:.2f}"),
            (
                "the finder entered and left around a phase (ms)",
                f"{best_ms(phase, args.rounds):.3f}",
            ),
            (f"an import the commit lacks, top level, {len(sys.path)} paths (us)", f"{top_us:.1f}"),
            ("an import the commit lacks, in a package of the repository (us)", f"{in_app_us:.1f}"),
        ]
        ws.close()
    width = max(len(label) for label, _ in rows)
    print(f"serving a commit's modules, {args.scripts} scripts, best of {args.rounds}")
    for label, value in rows:
        print(f"{label:<{width}}  {value:>8}")


if __name__ == "__main__":
    main()
