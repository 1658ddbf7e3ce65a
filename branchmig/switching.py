"""Bring the database along with the checkout: ``sync`` (what the hooks run) and
``switch`` (checkout included).

The database is the source of truth for what is applied. The scripts that applied it are
found, in order, in branchmig's record of what it last saw applied, the previous HEAD,
the working tree, then every branch, tag and HEAD reflog entry; their texts come from the
copies branchmig keeps, else from git's objects. The revert phase runs those old texts;
the upgrade phase runs the working tree's.

A move is decided first (``lifecycle``: what to restore, save, keep and drop, from whom
the database belongs to, found by ``provenance``), then carried out under the journal by
``_execute``, which puts everything back (``session.put_back``) if anything fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from branchmig.commitcode import code_at, code_for
from branchmig.downgrades import fix_for_failure
from branchmig.errors import (
    BranchmigError,
    DatabaseError,
    GitError,
    MoveFailed,
    NotAsRemembered,
    PlanError,
)
from branchmig.graph import Graph, Revision, merge_graphs
from branchmig.lifecycle import (
    Held,
    RestoreChoice,
    SnapshotDecision,
    Text,
    choose_restore,
    decide_snapshots,
    mismatch,
    next_text,
)
from branchmig.plan import Plan, make_plan
from branchmig.provenance import (
    blobs_of,
    candidate_texts,
    held_snapshots,
    on_line,
    owner_of_database,
    strays_among,
    unsure_texts,
)
from branchmig.session import (
    SKIP_HOOK,
    Session,
    finish_drops,
    forget,
    opened,
    put_back,
    quiet,
    worktree_name,
)
from branchmig.state import Failure, Journal, Owner, SnapshotRecord, State
from branchmig.urls import copy_url
from branchmig.workspace import WORKTREE, Workspace

if TYPE_CHECKING:
    from branchmig.snapshots import SnapshotBackend

Progress = Callable[[str], None]


@dataclass(frozen=True)
class MoveResult:
    """What a sync or a switch did (or, with ``dry_run``, would do)."""

    database: str  # masked URL
    branch: str | None
    before: tuple[str, ...]
    after: tuple[str, ...]
    plan: Plan
    dry_run: bool = False
    saved: str | None = None  # snapshot key kept for the branch left
    restored: str | None = None  # snapshot key restored for the branch entered
    notes: tuple[str, ...] = ()
    owner: str | None = None  # the branch the database belonged to before the move
    recovered: str | None = None  # a killed move this call put back first, in words


# -- finding the scripts the database has ------------------------------------------------


def applied_source(
    ws: Workspace,
    state: State,
    heads: tuple[str, ...],
    dbkey: str,
    *,
    previous: str | None,
    target: Graph,
) -> Graph:
    """A graph holding every revision the database has applied, as it was applied: from
    branchmig's record, else the previous HEAD, the target, then any ref. It stops at the
    first layer that holds them all."""
    graph = Graph.build(state.applied(dbkey).values())
    if _complete(graph, heads):
        return graph
    if previous:
        graph = merge_graphs(graph, Graph.build(ws.scripts_at_commit(previous).revisions))
        if _complete(graph, heads):
            return graph
    graph = merge_graphs(graph, target)
    if _complete(graph, heads):
        return graph
    seen = {previous}
    for _names, commit in ws.repo.all_ref_commits():
        if commit in seen:
            continue
        seen.add(commit)
        try:
            graph = merge_graphs(graph, Graph.build(ws.scripts_at_commit(commit).revisions))
        except BranchmigError:
            continue  # a broken old ref must not stop the search
        if _complete(graph, heads):
            return graph
    missing = [h for h in heads if h not in graph] or [r for r in _missing_ancestors(graph, heads)]
    raise PlanError(
        f"Revision {', '.join(repr(m) for m in missing)} is applied to the database but its "
        "script is on no branch, tag or reflog entry, and branchmig kept no copy. Restore "
        "the script into the versions folder, then run: branchmig sync"
    )


def _complete(graph: Graph, heads: tuple[str, ...]) -> bool:
    return not _missing_ancestors(graph, heads)


def _missing_ancestors(graph: Graph, heads: tuple[str, ...]) -> list[str]:
    missing, seen, stack = [], set(), list(heads)
    while stack:
        rev_id = stack.pop()
        if rev_id in seen:
            continue
        seen.add(rev_id)
        if rev_id not in graph:
            missing.append(rev_id)
            continue
        stack.extend(graph.parents_of(rev_id))
    return missing


def _script_text(ws: Workspace, state: State, rev: Revision) -> bytes:
    text = state.kept_script(rev.blob)
    if text is not None:
        return text
    try:
        for _, data in ws.repo.read_blobs([rev.blob]):
            return data
    except GitError:
        pass
    path = ws.repo.top / rev.path
    if path.is_file():
        data = path.read_bytes()
        if ws.repo.blob_id(data) == rev.blob:
            return data
    raise PlanError(
        f"Revision '{rev.id}' is applied to the database, but its script ({rev.path}, blob "
        f"{rev.blob[:12]}) is on no branch, tag or reflog entry and branchmig kept no copy, "
        "so it cannot be reverted; put the script back into the versions folder, then run: "
        "branchmig sync"
    )


# -- the pieces of a move ------------------------------------------------------------------


def _materialise(
    s: Session, revisions: tuple[str, ...], graph: Graph, folder: Path
) -> dict[str, tuple[Path, bytes]]:
    texts = {}
    for rev_id in revisions:
        rev = graph.revisions[rev_id]
        text = _script_text(s.ws, s.state, rev)
        # Laid out as in the repository, so a script importing from its own folder finds
        # the commit's modules there (commitcode); named by id, as two refs may hold
        # different revisions under one file name.
        path = folder / Path(rev.path).parent / f"{rev_id}_{Path(rev.path).name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text)
        texts[rev_id] = (path, text)
    return texts


def _worktree_texts(
    s: Session, revisions: tuple[str, ...], graph: Graph
) -> dict[str, tuple[Path, bytes]]:
    texts = {}
    for rev_id in revisions:
        rev = graph.revisions[rev_id]
        path = s.ws.repo.top / rev.path
        texts[rev_id] = (path, path.read_bytes())
    return texts


def _record(s: Session, graph: Graph, heads: tuple[str, ...], *, ran: Collection[str] = ()) -> None:
    """Remember which scripts the database now has, and keep a copy of each. A revision
    branchmig neither ran (``ran``) nor recorded before, applied by plain Alembic, is
    recorded only when git holds one text of it: of several, nothing says which one
    migrated the database (a revert then tries each)."""
    applied = {r: graph.revisions[r] for r in graph.ancestors(heads, strict=False) if r in graph}
    known = s.state.applied(s.dbkey)
    if known == applied:
        return
    seen = [r for r, rev in applied.items() if r not in ran and known.get(r) != rev]
    if seen:
        for rev_id in unsure_texts(s.ws, known, seen, target=graph):
            del applied[rev_id]
    recorded = {rev.blob for rev in known.values()}  # kept when they were recorded
    new = [rev for rev in applied.values() if rev.blob not in recorded]
    missing = {rev.blob: rev for rev in new if not s.state.has_kept(rev.blob)}
    for blob, text in s.ws.repo.read_blobs(missing, missing_ok=True):
        s.state.keep_script(blob, text)
        del missing[blob]
    for rev in missing.values():  # not in git: uncommitted scripts of the working tree
        with contextlib.suppress(PlanError):
            s.state.keep_script(rev.blob, _script_text(s.ws, s.state, rev))
    s.state.record_applied(s.dbkey, applied)


def _run(
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
    from branchmig.runner import Phase, run_phases

    def on_step(direction: str, rev: str) -> None:
        if not quiet_steps:
            s.progress(f"  {'reverted' if direction == 'downgrade' else 'applied '} {rev}")

    def on_database(name: str) -> None:
        if s.db.multi and not quiet_steps:
            s.progress(f"  database {name or '<default>'}:")

    applied = source.ancestors(s.db.heads)
    kept = set(applied) - set(plan.downgrade)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="branchmig-old-") as tmp, _forget_if_stale(s):
        old, new = Path(tmp) / "old", Path(tmp) / "new"
        old_texts = _materialise(s, plan.downgrade, source, old)
        reverted = [source.revisions[r] for r in plan.downgrade]
        old_code = code_for(s.ws, reverted, first=old_commits, mirror=old)
        new_texts = new_code = None
        if target_from_git:
            new_texts = _materialise(s, plan.upgrade, target, new)
            if target_commit is not None:
                new_code = code_at(s.ws, target_commit, mirrors=[new])
        run_phases(
            s.env,
            [
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
                    lambda: new_texts or _worktree_texts(s, plan.upgrade, target),
                    start_heads=plan.common,
                    code=new_code,
                ),
            ],
            between=between,
            on_step=on_step,
            on_start=on_start,
            on_database=on_database,
            expect=s.db if s.recalled and on_live else None,
        )
    return target.heads


@contextlib.contextmanager
def _forget_if_stale(s: Session) -> Iterator[None]:
    """A remembered database that env.py no longer gives is forgotten: the next command
    reads the database through env.py (and this one says to run it again)."""
    try:
        yield
    except NotAsRemembered as err:
        forget(s.ws, s.state)
        raise NotAsRemembered(f"{err}; run the command again") from err


def _rehearse(
    s: Session,
    d: _Decided,
    target: Graph,
    *,
    checked_out: bool,
    previous: str | None,
    target_commit: str | None,
) -> None:
    """Run the move's plan on a copy of the live database first (a SQLite file copy, a
    PostgreSQL template copy, a MariaDB copy: the snapshot backend's own save), through
    env.py pointed at it; the live database is touched only when that succeeded."""
    from branchmig.errors import ConfigError
    from branchmig.runner import StepFailed, flask_engines_at, read_database
    from branchmig.urls import same_database

    backend = s.backend()
    key = f"rehearsal-{_token()}"
    s.progress(f"branchmig: rehearsing the move on a copy of {s.masked}")
    s.env.dispose_engines()
    stored = backend.save(key)
    config = s.env.config
    original = config.get_main_option("sqlalchemy.url")
    pointed = contextlib.ExitStack()
    try:
        # Each database's copy: a multidb snapshot's members are in the databases' order.
        members = [b for _, b in getattr(backend, "members", ())] or [backend]
        locations = stored.location.split("; ") if len(members) > 1 else [stored.location]
        copies = {
            db.name: copy_url(db.url, member.name, location)
            for db, member, location in zip(s.db.databases, members, locations, strict=True)
        }
        first_copy = copies[s.db.databases[0].name]
        if s.env.flask_app is not None:  # the app's engines, made anew on the copies
            pointed.enter_context(flask_engines_at(s.env, copies))
        else:
            config.set_main_option("sqlalchemy.url", first_copy.replace("%", "%%"))
        reached = read_database(s.env).urls
        if not all(any(same_database(r, c) for c in copies.values()) for _, r in reached):
            raise ConfigError(
                "env.py does not connect to the sqlalchemy.url branchmig sets, so the move "
                "cannot be rehearsed on a copy; make env.py use config.get_main_option("
                "'sqlalchemy.url'), or run without --rehearse"
            )
        try:
            _run(
                s,
                d.plan,
                d.source,
                target,
                target_from_git=not checked_out,
                quiet_steps=True,
                on_live=False,
                old_commits=(previous, d.owner.commit),
                target_commit=target_commit,
            )
        except StepFailed as err:
            raise MoveFailed(
                err, restored=True, rehearsal=True, fix=_name_the_fix(s, d, target, err)
            ) from err
    finally:
        pointed.close()
        if original is not None:
            config.set_main_option("sqlalchemy.url", original.replace("%", "%%"))
        s.env.dispose_engines()
        backend.drop(key)


def _heads_now(s: Session) -> tuple[str, ...]:
    from branchmig.errors import DatabaseError
    from branchmig.runner import read_database

    if s.remembered:
        from branchmig.session import recall

        found = recall(s.ws, s.state)
        return found[0].heads if found is not None else ()
    try:
        return read_database(s.env).heads
    except DatabaseError:
        return ()


# -- sync and switch ----------------------------------------------------------------------


def sync(
    ws: Workspace,
    *,
    previous: str | None = None,
    dry_run: bool = False,
    snapshot: bool | None = None,
    terminate_connections: bool = False,
    progress: Progress = quiet,
    previous_branch: str | None = None,
    rehearse: bool | None = None,
) -> MoveResult:
    """Bring the database to the working tree's heads. ``previous`` is the commit the
    database followed (the hook's PREV); its scripts revert what the tree lacks.
    ``previous_branch`` is the branch a checkout left, when the caller knows it."""
    if not dry_run:
        moved = _sync_remembered(
            ws,
            previous=previous,
            snapshot=snapshot,
            terminate=terminate_connections,
            progress=progress,
            previous_branch=previous_branch,
            rehearse=rehearse,
        )
        if moved is not None:
            return moved
    from branchmig.runner import start_loading_alembic

    start_loading_alembic()
    _, target = ws.graph_at(WORKTREE)  # read while Alembic loads
    with opened(ws, progress, dry_run=dry_run, trust_remembered=True) as s:
        if s.recovery is not None and s.recovery.checked_out:
            _, target = ws.graph_at(WORKTREE)
        return _sync_move(
            s,
            target,
            previous=previous,
            dry_run=dry_run,
            snapshot=snapshot,
            terminate=terminate_connections,
            previous_branch=previous_branch,
            rehearse=rehearse,
        )


def _sync_move(
    s: Session,
    target: Graph,
    *,
    previous: str | None,
    dry_run: bool,
    snapshot: bool | None,
    terminate: bool,
    previous_branch: str | None,
    rehearse: bool | None,
) -> MoveResult:
    """The database to the working tree (``target``), on the branch checked out."""
    repo = s.ws.repo
    # A fast-forward rebase's only hook runs detached: it stays on its branch.
    return _move(
        s,
        target=target,
        target_commit=repo.head_commit(),
        previous=previous,
        dry_run=dry_run,
        snapshot=snapshot,
        terminate=terminate,
        checkout=None,
        hint=previous_branch or repo.rebasing_branch(),
        entering=repo.current_branch() or repo.rebasing_branch(),
        rehearse=rehearse,
    )


class _NeedsEnv(Exception):
    """The move runs migrations: a remembered session cannot carry it out."""


def _sync_remembered(
    ws: Workspace,
    *,
    previous: str | None,
    snapshot: bool | None,
    terminate: bool,
    progress: Progress,
    previous_branch: str | None,
    rehearse: bool | None,
) -> MoveResult | None:
    """A sync that only restores the entering branch's snapshot (or runs nothing), done
    on the remembered database without loading Alembic; None when it is not such a sync
    or the database cannot be trusted as remembered."""
    from branchmig.session import recalled

    with recalled(ws, progress) as s:
        if s is None:
            return None
        # Only a branch with a snapshot of its own can be entered by a restore, and only a
        # checkout on the same commit (a branch made there) by a save that runs nothing:
        # any other move runs migrations, so it goes the full way at once rather than read
        # the scripts and decide twice (a stray snapshot restored on its line goes that way).
        entering = ws.repo.current_branch() or ws.repo.rebasing_branch()
        if entering is None or not (
            any(r.branch == entering and r.database in s.dbid.keys for r in s.state.snapshots())
            or (previous is not None and previous == ws.repo.head_commit())
        ):
            return None
        _, target = ws.graph_at(WORKTREE)
        try:
            return _sync_move(
                s,
                target,
                previous=previous,
                dry_run=False,
                snapshot=snapshot,
                terminate=terminate,
                previous_branch=previous_branch,
                rehearse=rehearse,
            )
        except _NeedsEnv:
            return None


def switch(
    ws: Workspace,
    *,
    branch: str,
    dry_run: bool = False,
    snapshot: bool | None = None,
    terminate_connections: bool = False,
    progress: Progress = quiet,
    rehearse: bool | None = None,
) -> MoveResult:
    """Revert to the common revisions with this branch's scripts, ``git checkout
    BRANCH``, apply its heads. All or nothing when snapshots are on."""
    from branchmig.runner import start_loading_alembic

    start_loading_alembic()
    repo = ws.repo
    commit = repo.resolve(branch)
    head = repo.head_commit()
    _check_clean(ws, head, commit, branch)
    target = Graph.build(ws.scripts_at_commit(commit, ref=branch).revisions)
    entering = branch if repo.is_branch(branch) else None
    here = repo.current_branch()
    with opened(ws, progress, dry_run=dry_run, trust_remembered=True) as s:
        if s.recovery is not None and s.recovery.checked_out:
            head, here = repo.head_commit(), repo.current_branch()
        return _move(
            s,
            target=target,
            target_commit=commit,
            previous=head,
            dry_run=dry_run,
            snapshot=snapshot,
            terminate=terminate_connections,
            checkout=branch,
            hint=here,
            entering=entering,
            rehearse=rehearse,
        )


def _check_clean(ws: Workspace, head: str | None, commit: str, branch: str) -> None:
    dirty = ws.repo.dirty_paths()
    if not dirty:
        return
    watched = ws.project.watch_paths()
    own = set(ws.project.config_files())  # branchmig's config (an untracked alembic.ini)
    in_migrations = [
        p
        for p in dirty
        if p not in own and any(p == w or p.startswith(w.rstrip("/") + "/") for w in watched)
    ]
    if in_migrations:
        raise GitError(
            f"Uncommitted changes in the migrations ({', '.join(in_migrations[:3])}"
            f"{', …' if len(in_migrations) > 3 else ''}); commit or stash them, then run: "
            f"branchmig switch {branch}"
        )
    changed = ws.repo.changed_between(head, commit) if head else set()
    blocking = sorted(p for p in dirty if p in changed)
    if blocking:
        raise GitError(
            f"Uncommitted changes to {', '.join(blocking[:3])} would be overwritten by the "
            f"checkout of '{branch}'; commit or stash them first"
        )


@dataclass(frozen=True)
class _Decided:
    owner: Owner
    source: Graph
    plan: Plan
    restore: Held | None
    snapshots: SnapshotDecision
    applied: dict[str, str]  # what the database being left holds: revision -> blob


def _decide(
    s: Session,
    *,
    target: Graph,
    target_commit: str | None,
    previous: str | None,
    snapshot: bool | None,
    hint: str | None,
    entering: str | None,
    reverting_with: Mapping[str, Revision] | None = None,
) -> _Decided:
    """Gather the facts (owner, snapshots, plan) and let ``lifecycle`` decide.
    ``reverting_with``: the scripts to revert these revisions with, in place of those
    found first (a text tried after another failed)."""
    ws, state = s.ws, s.state
    split = s.db.disagreement()
    if split:
        raise DatabaseError(
            f"Cannot move {s.masked}: {split}; bring them to one revision "
            "(flask db upgrade or downgrade), then run: branchmig sync"
        )
    mode = ws.project.settings.snapshots
    use = snapshot if snapshot is not None else mode != "never"
    before = s.db.heads
    source = applied_source(ws, state, before, _applied_key(s), previous=previous, target=target)
    if reverting_with:
        source = Graph.build([reverting_with.get(r.id, r) for r in source.revisions.values()])
    owner = owner_of_database(ws, state, s.dbid, before, hint=hint, hint_commit=previous)
    held = held_snapshots(state, s.dbid) if use else []
    choice = RestoreChoice(None)
    if use and entering is not None and entering != owner.branch:
        wanted = blobs_of(target)
        others = [h for h in held if h.branch != entering and not mismatch(h, wanted)]
        strays = strays_among(ws, others)
        line = on_line(ws, [h for h in others if h.key in strays], target_commit)
        choice = choose_restore(
            entering=entering,
            leaving=owner.branch,
            candidates=held,
            target=wanted,
            strays=strays,
            on_our_line=line,
        )
    s.notes.extend(choice.notes)
    restore = choice.held
    if restore is not None:  # the plan starts from the snapshot, not from the database
        plan = make_plan(applied_heads=restore.heads, source=target, target=target)
    else:
        from branchmig.analysis import with_destructive  # a restore does without it

        plan = make_plan(applied_heads=before, source=source, target=target)
        # Each text the downgrades run, as they will run it (fail before anything is
        # touched, dry run or not): what they destroy is read from the same texts.
        texts = {r: _script_text(ws, state, source.revisions[r]) for r in plan.downgrade}
        plan = with_destructive(ws, plan, source, target, texts=texts, columns=lambda: _columns(s))
    if plan.batch_needed and s.db.on_sqlite and not s.remembered:
        from branchmig.analysis import batch_warnings

        for warning in batch_warnings(plan, source):  # before anything runs
            s.progress(f"branchmig: warning: {warning}")
    applied = blobs_of(source, tuple(source.ancestors(before, strict=False)))
    superseded = {h.key for h in held if h.branch == owner.branch and not mismatch(h, applied)}
    decision = decide_snapshots(
        use=use,
        mode=mode,
        forced=snapshot is True,
        noop=plan.is_noop,
        destructive=bool(plan.destructive),
        restoring=restore is not None,
        at_base=not before,
        leaving=owner.branch,
        entering=entering,
        token=_token(),
        candidates=held,
        superseded=superseded,
    )
    return _Decided(owner, source, plan, restore, decision, applied)


def _columns(s: Session) -> dict[str, list[str]]:
    """Which columns of the live SQLite database(s) SQLite cannot drop in place, by
    their own word; none on another database (nothing is refused there)."""
    from branchmig.runner import sqlite_constrained_columns

    found: dict[str, list[str]] = {}
    for db in s.db.databases:
        if db.url.startswith("sqlite"):
            for key, what in sqlite_constrained_columns(db.url).items():
                found[key] = list(dict.fromkeys([*found.get(key, []), *what]))
    return found


def _token() -> str:
    """New for every save: milliseconds since the epoch in base 36, and 2 random bytes."""
    ms, digits = int(time.time() * 1000), ""
    while ms:
        ms, digit = divmod(ms, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
    return digits[-8:] + os.urandom(2).hex()


def _applied_key(s: Session) -> str:
    """The key this database's applied record is under (an earlier branchmig's, until
    this one writes it)."""
    for key in s.dbid.keys:
        if s.state.applied(key):
            return key
    return s.dbid.key


def _move(
    s: Session,
    *,
    target: Graph,
    target_commit: str | None,
    previous: str | None,
    dry_run: bool,
    snapshot: bool | None,
    terminate: bool,
    checkout: str | None,
    hint: str | None,
    entering: str | None,
    rehearse: bool | None = None,
) -> MoveResult:
    d = _decide(
        s,
        target=target,
        target_commit=target_commit,
        previous=previous,
        snapshot=snapshot,
        hint=hint,
        entering=entering,
    )
    if s.remembered and not d.plan.is_noop:
        raise _NeedsEnv  # before anything is touched or said
    before = s.db.heads
    result = MoveResult(
        database=s.masked,
        branch=entering,
        before=before,
        after=before,
        plan=d.plan,
        dry_run=dry_run,
        restored=d.restore.key if d.restore is not None else None,
        notes=tuple(s.notes),
        owner=d.owner.branch,
        recovered=s.recovery.describe() if s.recovery else None,
    )
    if dry_run:
        return result
    rehearse = s.ws.project.settings.rehearse if rehearse is None else rehearse
    if d.plan.is_noop and d.restore is None and d.snapshots.save is None:
        if checkout:
            s.ws.repo.checkout(checkout, env=SKIP_HOOK)
        _record(s, target, before)
        _finish(s, entering, target_commit, before)
        return result
    after, d = _carry_out(
        s,
        d,
        target=target,
        target_commit=target_commit,
        previous=previous,
        snapshot=snapshot,
        terminate=terminate,
        checkout=checkout,
        hint=hint,
        entering=entering,
        rehearse=rehearse,
    )
    return replace(
        result,
        after=after,
        notes=tuple(dict.fromkeys(s.notes)),
        saved=d.snapshots.save if d.snapshots.keep else None,
    )


def _carry_out(
    s: Session,
    d: _Decided,
    *,
    target: Graph,
    target_commit: str | None,
    previous: str | None,
    snapshot: bool | None,
    terminate: bool,
    checkout: str | None,
    hint: str | None,
    entering: str | None,
    rehearse: bool,
) -> tuple[tuple[str, ...], _Decided]:
    """Rehearse and execute ``d``. A revert that fails with a text of a changed script
    while the database was put back is tried again with the next text git holds of it
    (``lifecycle.next_text``); when none is left, the failure names the texts tried."""
    before = s.db.heads
    texts: dict[str, Revision] = {}
    tried: dict[str, list[Text]] = {}
    while True:
        said = len(s.notes)
        try:
            return _attempt(
                s,
                d,
                target=target,
                target_commit=target_commit,
                previous=previous,
                terminate=terminate,
                checkout=checkout,
                hint=hint,
                entering=entering,
                rehearse=rehearse,
            ), d
        except MoveFailed as err:
            again = _text_to_try(
                s, d, err, tried, previous=previous, target=target, checkout=checkout
            )
            if isinstance(again, Text):
                del s.notes[said:]  # "restored from snapshot": this attempt's, put back
                s.notes.append(
                    f"'{again.revision.id}' was reverted with its text {again.describe()}: "
                    "its script changed after that text migrated the database"
                )
                texts[again.revision.id] = again.revision
                d = _decide(
                    s,
                    target=target,
                    target_commit=target_commit,
                    previous=previous,
                    snapshot=snapshot,
                    hint=hint,
                    entering=entering,
                    reverting_with=texts,
                )
                continue
            err = again or err
            _remember_failure(
                s,
                d,
                target,
                err,
                operation="switch" if checkout else "sync",
                to=checkout or entering or "the working tree",
                before=before,
            )
            raise err from err.cause


def _text_to_try(
    s: Session,
    d: _Decided,
    err: MoveFailed,
    tried: dict[str, list[Text]],
    *,
    previous: str | None,
    target: Graph,
    checkout: str | None,
) -> Text | MoveFailed | None:
    """After ``err``: the next text to revert its revision with (the database was put
    back, and git holds one not tried yet), else the failure naming the texts tried
    (None: not a failed revert)."""
    from branchmig.runner import StepFailed

    step = err.cause
    if not (isinstance(step, StepFailed) and step.direction == "downgrade" and err.restored):
        return None
    rev = d.source.revisions.get(step.revision)
    if rev is None or d.restore is not None:
        return None
    texts = candidate_texts(
        s.ws,
        s.state.applied(_applied_key(s)),
        rev.id,
        previous=previous,
        target=target,
        target_is=f"'{checkout}'" if checkout else "the working tree",
    )
    used = next((t for t in texts if t.revision.blob == rev.blob), Text(rev, "branchmig's copy"))
    tried.setdefault(rev.id, []).append(used)
    after = next_text(texts, {t.revision.blob for t in tried[rev.id]})
    if after is not None:
        s.progress(
            f"branchmig: the downgrade of '{rev.id}' in its text {used.describe()} does not "
            f"fit the database (put back as it was); trying its text {after.describe()}"
        )
        return after
    if [t.where for t in tried[rev.id]] in (["branchmig's record"], ["branchmig's copy"]):
        return None  # the one text branchmig ran itself: a downgrade to fix, said as such
    again = f"branchmig switch {checkout}" if checkout else "branchmig sync"
    tool = "flask db" if s.ws.project.kind == "flask" else "alembic"
    err.tried = tuple(t.describe() for t in tried[rev.id])
    err.then = (
        f"fix the downgrade of '{rev.id}' so that it fits the database and run it by hand "
        f"({tool} downgrade {rev.id}-1), then run: {again}"
    )
    return err


def _attempt(
    s: Session,
    d: _Decided,
    *,
    target: Graph,
    target_commit: str | None,
    previous: str | None,
    terminate: bool,
    checkout: str | None,
    hint: str | None,
    entering: str | None,
    rehearse: bool,
) -> tuple[str, ...]:
    if rehearse and d.restore is None:
        _rehearse(
            s,
            d,
            target,
            checked_out=checkout is None,
            previous=previous,
            target_commit=target_commit,
        )
    elif rehearse:
        s.notes.append(
            "not rehearsed: the entering branch's snapshot is restored first, and "
            "a failure after it puts both databases back"
        )
    return _execute(
        s,
        d,
        target=target,
        target_commit=target_commit,
        checkout=checkout,
        entering=entering,
        terminate=terminate,
        previous=previous,
        hint=hint,
    )


def _finish(s: Session, entering: str | None, commit: str | None, heads: tuple[str, ...]) -> None:
    s.state.set_owner(s.dbkey, Owner(entering, commit, heads, reflog=s.ws.repo.reflog_size()))
    s.state.set_suspect(s.dbkey, None)
    s.state.note_left_on(worktree_name(s.ws), entering)
    s.state.set_failure(s.dbkey, None)


def _remember_failure(
    s: Session,
    d: _Decided,
    target: Graph,
    err: MoveFailed,
    *,
    operation: str,
    to: str,
    before: tuple[str, ...],
) -> None:
    """Keep what ``status`` needs to name a failed step and its fix after this process
    is gone (the hook's message scrolls away)."""
    from branchmig.runner import StepFailed

    step = err.cause
    if not isinstance(step, StepFailed):
        return
    graph = d.source if step.direction == "downgrade" else target
    rev = graph.revisions.get(step.revision)
    if err.restored or err.rehearsal:
        heads = before
    else:
        heads = err.heads if err.heads is not None else _heads_now(s)
    with contextlib.suppress(BranchmigError):  # the failure itself is what to report
        s.state.set_failure(
            s.dbkey,
            Failure(
                operation=operation,
                to=to,
                direction=step.direction,
                revision=step.revision,
                path=rev.path if rev is not None else "",
                blob=rev.blob if rev is not None else "",
                cause=step.cause,
                fix=err.fix,
                heads=tuple(heads),
                restored=err.restored,
                rehearsal=err.rehearsal,
                half_made=err.half_made,
                at=time.time(),
            ),
        )


def _execute(
    s: Session,
    d: _Decided,
    *,
    target: Graph,
    target_commit: str | None,
    checkout: str | None,
    entering: str | None,
    terminate: bool,
    previous: str | None,
    hint: str | None,
) -> tuple[str, ...]:
    """Carry out the decision under the journal: all or nothing when a snapshot is taken."""
    state, plan, restore, snaps = s.state, d.plan, d.restore, d.snapshots
    before = s.db.heads
    backend = s.backend(terminate=terminate) if snaps.save else None
    # A switch checks out again what it found checked out (its hint is that branch and
    # its previous commit that HEAD); a sync's recovery gives the database to its owner.
    journal = Journal(
        operation="switch" if checkout else "sync",
        pid=os.getpid(),
        started=time.time(),
        database=s.dbkey,
        from_commit=previous if checkout else d.owner.commit,
        from_branch=hint if checkout else d.owner.branch,
        to=checkout or entering or "the working tree",
        safety_snapshot=snaps.save,
        restored_snapshot=restore.key if restore is not None else None,
        to_commit=target_commit,
        to_branch=entering,
    )
    state.write_journal(journal)
    source = d.source
    try:
        _failpoint("journal")
        if backend is not None and snaps.save is not None:
            s.env.dispose_engines()
            leaving = d.owner.branch or "HEAD"
            if restore is not None:
                s.progress(f"branchmig: restoring the snapshot of '{entering}'")
                backend.restore(restore.key, keep_current_as=snaps.save)
                # Said once it is true: a restore that fails leaves no such copy.
                s.progress(f"branchmig: kept the database of '{leaving}' as '{snaps.save}'")
                s.db = s.db.with_heads(restore.heads)
                source = target
            else:
                s.progress(
                    f"branchmig: saving the database of '{leaving}' as snapshot '{snaps.save}'"
                )
                backend.save(snaps.save)
            state.add_snapshot(
                SnapshotRecord(
                    key=snaps.save,
                    branch=d.owner.branch,
                    commit=d.owner.commit,
                    heads=list(before),
                    database=s.dbkey,
                    backend=backend.name,
                    size=_size(backend, snaps.save),
                    purpose="branch" if snaps.keep else "safety",
                ),
                applied=d.applied,
            )
            journal.phase = "saved"
            state.write_journal(journal)
            _failpoint("saved")
            if restore is not None and snaps.resave is not None:
                # What arrived on the branch since is applied next: keep the snapshot's
                # content until that worked, so a failure loses neither database.
                backend.save(snaps.resave)
                state.add_snapshot(
                    SnapshotRecord(
                        key=snaps.resave,
                        branch=restore.branch,
                        commit=restore.commit,
                        heads=list(restore.heads),
                        database=s.dbkey,
                        backend=backend.name,
                        size=_size(backend, snaps.resave),
                        purpose=restore.purpose,
                    ),
                    applied=dict(restore.applied or {}),
                )
                journal.resaved_snapshot = snaps.resave
                state.write_journal(journal)
                _failpoint("resaved")
        journal.phase = "migrating"
        state.write_journal(journal)
        between = None
        if checkout is not None:
            # _check_clean refused dirty or untracked migrations: after the checkout the
            # tree holds exactly the target commit's scripts.
            def between() -> None:
                s.ws.repo.checkout(checkout, env=SKIP_HOOK)
                journal.checked_out = True
                state.write_journal(journal)
                _failpoint("checked-out")

        def on_start(direction: str, revision: str) -> None:
            if backend is None:  # with a snapshot, a kill restores it instead
                journal.in_flight = [direction, revision]
                state.write_journal(journal, durable=False)
            _failpoint("step")

        after = _run(
            s,
            plan,
            source,
            target,
            between=between,
            on_start=on_start,
            old_commits=(previous, d.owner.commit, target_commit),
        )
        _failpoint("migrated")
    except BaseException as err:
        failure = _roll_back(
            s, backend, journal, checkout, err, fix=_name_the_fix(s, d, target, err)
        )
        if failure is None:
            raise
        raise failure from err
    # Done: from here a kill finishes the move rather than undoing it.
    if backend is not None:
        journal.drops = [*snaps.replaces]
        if restore is not None and snaps.resave is not None:
            journal.drops.append(snaps.resave)
        if snaps.save is not None and not snaps.keep:
            journal.drops.append(snaps.save)
    journal.phase = "done"
    state.write_journal(journal, durable=False)
    _failpoint("done")
    if backend is not None:
        finish_drops(backend, state, journal)
    restored = restore.applied or {} if restore is not None else {}
    _record(s, target, after, ran=(*plan.upgrade, *restored))
    _finish(s, entering, target_commit, after)
    state.clear_journal()
    return after


def _name_the_fix(s: Session, d: _Decided, target: Graph, err: BaseException) -> str | None:
    """A SQLite migration that failed on a column SQLite would not drop or alter in
    place (by SQLite's own message): what to change, in the revision's own file."""
    from branchmig.runner import StepFailed

    if not (isinstance(err, StepFailed) and s.db.on_sqlite):
        return None
    graph = d.source if err.direction == "downgrade" else target
    rev = graph.revisions.get(err.revision)
    if rev is None:
        return None
    try:
        text = _script_text(s.ws, s.state, rev)
    except PlanError:
        return None
    return fix_for_failure(text, rev.id, err.direction, err.cause, rev.path)


def _failpoint(name: str) -> None:
    """Where the fault-injection tests stop a move: ``BRANCHMIG_FAILPOINT=NAME`` raises
    there, ``NAME:kill`` kills the process as ``kill -9`` would. Points: journal, saved,
    resaved, checked-out, step (each migration step), migrated, done."""
    wanted = os.environ.get("BRANCHMIG_FAILPOINT")
    if not wanted or wanted.partition(":")[0] != name:
        return
    if wanted.endswith(":kill"):
        os.kill(os.getpid(), signal.SIGKILL)
    raise BranchmigError(f"injected fault at '{name}'")


def _size(backend: SnapshotBackend, key: str) -> int:
    for stored in backend.stored():
        if stored.key == key:
            return stored.size
    return 0


def _roll_back(
    s: Session,
    backend: SnapshotBackend | None,
    journal: Journal,
    checkout: str | None,
    err: BaseException,
    fix: str | None = None,
) -> MoveFailed | None:
    """Put the database (and a checkout we made) back as they were, and say what became
    of it: the error to raise instead of ``err`` (None for one that is not branchmig's,
    an interrupt say, which goes up as it is)."""
    rolled_back = False
    if backend is not None:
        try:
            rolled_back = put_back(backend, s.state, journal, s.env.dispose_engines)
        except BranchmigError as restore_err:
            s.state.clear_journal()
            return MoveFailed(
                err,
                restored=False,
                restore_failed=str(restore_err),
                snapshot=journal.safety_snapshot,
            )
        if rolled_back:
            s.notes.append(f"the database was restored from snapshot '{journal.safety_snapshot}'")
    if (journal.phase == "start" or isinstance(err, NotAsRemembered)) and not rolled_back:
        rolled_back = True  # nothing had touched the database yet
    back = journal.from_branch or journal.from_commit
    if journal.checked_out and checkout is not None and rolled_back and back:
        with contextlib.suppress(GitError):
            s.ws.repo.checkout(back, env=SKIP_HOOK)
    elif checkout is not None and not journal.checked_out and journal.from_commit:
        # git's checkout itself failed or was interrupted (Ctrl-C reaches git too): what
        # it had written of the target goes back, HEAD never having moved.
        with contextlib.suppress(GitError):
            if journal.to_commit and s.ws.repo.head_commit() == journal.from_commit:
                s.ws.repo.undo_partial_checkout(journal.from_commit, journal.to_commit, since=None)
    s.state.clear_journal()
    if not isinstance(err, BranchmigError):
        return None
    heads = then = half = earlier = None
    if not rolled_back and journal.phase == "migrating":
        heads = _heads_now(s)
        again = (
            "branchmig sync"
            if journal.checked_out or checkout is None
            else f"branchmig switch {checkout}"
        )
        then = f"fix the script, then run: {again}"
        from branchmig.runner import StepFailed

        if isinstance(err, StepFailed) and err.direction == "downgrade":
            # Reverted with the text that applied it: a fixed file is not what runs.
            tool = "flask db" if s.ws.project.kind == "flask" else "alembic"
            then = (
                f"branchmig reverts '{err.revision}' with the script that applied it, so fix "
                f"its downgrade and run it by hand ({tool} downgrade {err.revision}-1), then "
                f"run: {again}"
            )
        half = journal.in_flight[1] if journal.in_flight else None
    suspect = s.state.suspect(s.dbkey)
    if suspect is not None and not rolled_back:
        earlier = (
            f"an earlier {suspect.operation} was killed while it ran the "
            f"{suspect.direction} of '{suspect.revision}', which may be half made"
        )
    return MoveFailed(
        err,
        restored=rolled_back,
        heads=heads,
        half_made=half,
        then=then,
        fix=fix,
        earlier_suspect=earlier,
    )
