"""What the git hooks run once their shell part has seen that migrations changed:
``python -m branchmig.hookrun post-checkout PREV NEW FLAG`` (and post-merge,
post-rewrite). It never makes git fail: it explains and points at the command that
finishes the job."""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # builtin; `signal` builds enums first
import os
import sys


def _interrupted_early(signum: int, frame: object) -> None:
    """Ctrl-C (git's whole group gets it) while this process still loads: nothing has
    been read or touched, so it only says so and ends (git's checkout is done)."""
    os.write(2, b"branchmig: interrupted before it began; see: branchmig status\n")
    os._exit(0)


if __name__ == "__main__":  # until run() takes over, an interrupt ends the process quietly
    _signal.signal(_signal.SIGINT, _interrupted_early)

import re  # noqa: E402 - after the handler: a Ctrl-C while loading prints no traceback
import signal  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

from branchmig.errors import (  # noqa: E402
    BranchmigError,
    MoveFailed,
    NoProjectError,
    ScriptLoadError,
    SessionsBlockingError,
)
from branchmig.gitrepo import GitRepo, is_null_id  # noqa: E402
from branchmig.heads import heads  # noqa: E402
from branchmig.layout import recorded_config  # noqa: E402
from branchmig.process import exit_now  # noqa: E402
from branchmig.project import find_project  # noqa: E402
from branchmig.reports.move import hook_lines, merge_hook_lines  # noqa: E402
from branchmig.workspace import Workspace  # noqa: E402

if TYPE_CHECKING:
    from branchmig.move.result import MoveResult


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# Set by the pre-commit framework's entry (.pre-commit-hooks.yaml): a hook that could not
# bring the database along exits 1 there, so that pre-commit says "Failed", not "Passed".
# git's own hooks always exit 0: their status would become git's.
REPORT_FAILURE = "BRANCHMIG_HOOK_REPORTS_FAILURE"


def run(hook: str, args: list[str], *, cwd: Path | None = None) -> int:
    """Bring the database along after ``hook``; 0, or 1 when it could not and the
    pre-commit framework runs it (``BRANCHMIG_HOOK_REPORTS_FAILURE``)."""
    failed = 1 if os.environ.get(REPORT_FAILURE) == "1" else 0
    ws: Workspace | None = None
    try:
        try:
            ws = _open(cwd or Path.cwd())
        except NoProjectError:
            # A branch without the app (gh-pages, docs): nothing to bring along.
            _say("branchmig: no Alembic project in this checkout; the database is left as it is")
            return 0
        previous: str | None = None
        previous_branch: str | None = None
        if hook == "post-checkout":
            previous = args[0] if args and not is_null_id(args[0]) else None
            previous_branch = _branch_left(ws) if previous else None
        elif hook in ("post-merge", "post-rewrite", "post-commit"):
            if hook == "post-rewrite" and (not args or args[0] != "rebase"):
                return 0
            if hook == "post-commit":
                # Only a merge concluded by `git commit` after resolving conflicts: git
                # runs post-commit for it, not post-merge.
                if ws.repo.second_parent("HEAD") is None:
                    return 0
                previous = ws.repo.commit_or_none("HEAD^1")
            else:
                previous = ws.repo.commit_or_none("ORIG_HEAD")
            # A merge or a rebase stays on its branch: never restore its own snapshot.
            previous_branch = ws.repo.current_branch()
        else:
            _say(f"branchmig: unknown hook '{hook}'")
            return 0
        merging = hook in ("post-merge", "post-rewrite", "post-commit")
        if merging and _close_merge(ws):
            return 0
        result = _sync(ws, previous=previous, previous_branch=previous_branch)
        for line in hook_lines(result):
            _say(line)
        if merging:
            _warn_heads(ws, "rebase" if hook == "post-rewrite" else "merge")
    except BranchmigError as err:
        blocking = err.cause if isinstance(err, MoveFailed) else err
        if isinstance(blocking, SessionsBlockingError):
            _say(
                f"branchmig: {blocking} Nothing was changed. Close them "
                "(stop the app server), then run: branchmig sync; or to end them, run: "
                "branchmig sync --terminate-connections"
            )
            return failed
        _say(f"branchmig: {err}")
        missing = _missing_module(err)
        if missing is not None:
            _say(_missing_module_advice(missing))
        _say("branchmig: the checkout itself is done; see: branchmig status")
        return failed
    except KeyboardInterrupt:
        # Ctrl-C reaches the hook with git: the move has put back what it could.
        _say("branchmig: interrupted; the checkout itself is done; see: branchmig status")
        return failed
    except Exception as err:  # noqa: BLE001 - a hook must never make git fail
        _say(f"branchmig: internal error in the {hook} hook: {type(err).__name__}: {err}")
        _say("branchmig: the checkout itself is done; run: branchmig sync")
        return failed
    finally:
        if ws is not None:
            ws.close()
    return 0


def _open(start: Path) -> Workspace:
    """The project as ``branchmig install`` saw it: by the config files it recorded when
    the top level does not find it by itself (named with -c, found in a subfolder)."""
    repo = GitRepo.discover(start)
    named = [repo.top / p for p in recorded_config(repo.common_dir)]
    if named and not named[0].is_file():
        raise NoProjectError(f"no '{named[0]}' in this checkout")
    return Workspace(repo, find_project(repo.top, repo_root=repo.top, config=named or None))


def _missing_module(err: BaseException) -> str | None:
    """The module env.py, the app or a database driver imports that this Python lacks:
    from the exceptions chained under ``err``, else from the message the app loader
    keeps of its traceback. None for a migration script's own import (a helper of the
    project's): no package installed would bring that."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ScriptLoadError):
            return None
        if isinstance(seen, ModuleNotFoundError) and seen.name:
            return seen.name.partition(".")[0]
        seen = seen.__cause__ or seen.__context__
    found = re.search(r"No module named '([^'.]+)", str(err))
    return found.group(1) if found else None


def _missing_module_advice(module: str) -> str:
    return (
        f"branchmig: the Python that runs this hook has no '{module}' module (your env.py, "
        "app or database driver imports it). Under the pre-commit framework, either list "
        f"it in the branchmig hooks' additional_dependencies (e.g. additional_dependencies: "
        f"[{module}]), or set language: system to run them with the python of your "
        "project's activated virtual environment; with branchmig's own hooks, run "
        "branchmig install from that environment"
    )


def _branch_left(ws: Workspace) -> str | None:
    """The branch this checkout left, from the worktree's reflog (None when it left a
    detached HEAD, or for the first checkout of a new worktree)."""
    move = ws.repo.last_checkout()
    if move is None:
        return None
    left = move[0]
    return left if ws.repo.is_branch(left) else None


def _sync(ws: Workspace, *, previous: str | None, previous_branch: str | None) -> MoveResult:
    # A door: an amend or a plain commit skips the hook without loading the move (~20 ms).
    from branchmig.move.commands import sync

    return sync(ws, previous=previous, previous_branch=previous_branch, progress=_say)


def _extra_heads(ws: Workspace) -> tuple[str, ...]:
    found = heads(ws).heads
    return found if len(found) > ws.project.settings.expected_heads else ()


def _close_merge(ws: Workspace) -> bool:
    """With ``on_merge = "merge" | "rebase"``, close a merge (or a rebase, or a pull of
    either) that left several heads. ``merge_heads`` upgrades the database itself, once:
    syncing first would apply both heads, then revert one of them for a rebase."""
    mode = ws.project.settings.on_merge
    if mode == "warn" or not _extra_heads(ws):
        return False
    # A door: merge.py (with the move it imports) loads only when a merge left several heads.
    from branchmig.merge import merge_heads

    outcome = merge_heads(ws, rebase=mode == "rebase", progress=_say)
    for line in merge_hook_lines(outcome):
        _say(line)
    return True


def _warn_heads(ws: Workspace, what: str) -> None:
    extra = _extra_heads(ws)
    if extra:
        _say(
            f"branchmig: the {what} left {len(extra)} migration heads ({', '.join(extra)}); "
            "run: branchmig merge-heads (or branchmig merge-heads --rebase)"
        )


def main() -> None:
    if len(sys.argv) < 2:
        _say("usage: python -m branchmig.hookrun HOOK [ARGS...]")
        exit_now(0)
    # From here a Ctrl-C is a KeyboardInterrupt: a move puts back what it began.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    exit_now(run(sys.argv[1], sys.argv[2:]))


if __name__ == "__main__":
    main()
