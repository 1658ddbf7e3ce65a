"""The migration steps of a move: the old scripts revert, the new ones apply, each run
with the project's modules as they were at its commit."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from branchmig.errors import NotAsRemembered
from branchmig.graph import Graph
from branchmig.move.applied import script_text
from branchmig.plan import Plan
from branchmig.session import Session, forget

if TYPE_CHECKING:
    from branchmig.runner import Phase


def run_plan(
    s: Session,
    plan: Plan,
    source: Graph,
    target: Graph,
    *,
    between: Callable[[], None] | None = None,
    on_start: Callable[[str, str], None] | None = None,
    target_from_git: bool = False,
    quiet_steps: bool = False,
    on_live: bool = True,
    old_commits: tuple[str | None, ...] = (),
    target_commit: str | None = None,
) -> tuple[str, ...]:
    """Revert with the old scripts, call ``between`` (the checkout), apply the new (read
    from the tree after the checkout, or with ``target_from_git`` from git's objects at
    ``target_commit``). Each phase imports the project's modules as they were at the
    commit of its scripts: the first of ``old_commits`` holding the old ones (else any
    ref's, see ``commit_holding``). ``on_live``: env.py connects to the session's
    database (not a rehearsal's copy), which it checks first when the session took it as
    remembered."""
    if not plan.downgrade and not plan.upgrade:  # a restore that migrates nothing
        if between is not None:
            between()
        return target.heads
    # A door: Alembic's runner (and, in _phases, the project's code at a commit) load
    # only for a plan with steps; a return that only restores runs none.
    import tempfile

    from branchmig.runner import run_phases

    def on_step(direction: str, rev: str) -> None:
        if not quiet_steps:
            s.progress(f"  {'reverted' if direction == 'downgrade' else 'applied '} {rev}")

    def on_database(name: str) -> None:
        if s.db.multi and not quiet_steps:
            s.progress(f"  database {name or '<default>'}:")

    with tempfile.TemporaryDirectory(prefix="branchmig-old-") as tmp, forget_if_stale(s):
        run_phases(
            s.env,
            _phases(
                s, plan, source, target, Path(tmp), target_from_git, old_commits, target_commit
            ),
            between=between,
            on_step=on_step,
            on_start=on_start,
            on_database=on_database,
            expect=s.db if s.recalled and on_live else None,
        )
    return target.heads


def _phases(
    s: Session,
    plan: Plan,
    source: Graph,
    target: Graph,
    tmp: Path,
    target_from_git: bool,
    old_commits: tuple[str | None, ...],
    target_commit: str | None,
) -> list[Phase]:
    """The revert with the old texts laid out under ``tmp``, then the upgrade."""
    # A door: the project's code at a commit, behind run_plan's (a plan with steps).
    from branchmig.commitcode import code_at, code_for
    from branchmig.runner import Phase

    applied = source.ancestors(s.db.heads)
    kept = set(applied) - set(plan.downgrade)
    old, new = tmp / "old", tmp / "new"
    old_texts = materialise(s, plan.downgrade, source, old)
    reverted = [source.revisions[r] for r in plan.downgrade]
    old_code = code_for(s.ws, reverted, first=old_commits, mirror=old)
    new_texts = new_code = None
    if target_from_git:
        new_texts = materialise(s, plan.upgrade, target, new)
        if target_commit is not None:
            new_code = code_at(s.ws, target_commit, mirrors=[new])
    return [
        Phase(
            "downgrade",
            plan.downgrade,
            source,
            applied,
            lambda: old_texts,
            start_heads=s.db.heads,
            code=old_code,
        ),
        Phase(
            "upgrade",
            plan.upgrade,
            target,
            set(target.ancestors(target.heads)) | kept,
            lambda: new_texts or worktree_texts(s, plan.upgrade, target),
            start_heads=plan.common,
            code=new_code,
        ),
    ]


def materialise(
    s: Session, revisions: tuple[str, ...], graph: Graph, folder: Path
) -> dict[str, tuple[Path, bytes]]:
    texts = {}
    for rev_id in revisions:
        rev = graph.revisions[rev_id]
        text = script_text(s.ws, s.state, rev)
        # Laid out as in the repository, so a script importing from its own folder finds
        # the commit's modules there (commitcode); named by id, as two refs may hold
        # different revisions under one file name.
        path = folder / Path(rev.path).parent / f"{rev_id}_{Path(rev.path).name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text)
        texts[rev_id] = (path, text)
    return texts


def worktree_texts(
    s: Session, revisions: tuple[str, ...], graph: Graph
) -> dict[str, tuple[Path, bytes]]:
    texts = {}
    for rev_id in revisions:
        rev = graph.revisions[rev_id]
        path = s.ws.repo.top / rev.path
        texts[rev_id] = (path, path.read_bytes())
    return texts


@contextlib.contextmanager
def forget_if_stale(s: Session) -> Iterator[None]:
    """A remembered database that env.py no longer gives is forgotten: the next command
    reads the database through env.py (and this one says to run it again)."""
    try:
        yield
    except NotAsRemembered as err:
        forget(s.ws, s.state)
        raise NotAsRemembered(f"{err}; run the command again") from err
