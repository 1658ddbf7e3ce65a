"""A session with the project's database: the lock held, Alembic's environment open, the
live database read and identified, and a move that was killed half-way put back first.

Putting back is one rule, used both by a move that fails and by the next command after a
kill: if the copy of the database taken before the move exists, the live database may
have been touched since, so that copy is restored (its content is the database as it was);
the entering branch's snapshot, if the live database still holds it unmigrated, is kept
again under its key. With no copy, nothing can be put back: the revision that was running
is remembered as suspect, and ``status`` names it until a move completes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import chdir, contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from branchmig import remembered
from branchmig.alembicenv import alembic_env
from branchmig.databases import AlembicEnv, DatabaseState
from branchmig.dbread import missing_database, read_database
from branchmig.errors import BranchmigError, DatabaseError
from branchmig.process import Progress
from branchmig.snapshots import SnapshotBackend, backend_for
from branchmig.snapshots.folder import SnapshotFolder
from branchmig.state import DatabaseId, Journal, Owner, State, Suspect, moving
from branchmig.urls import parse_server_url, plain_sqlite_path
from branchmig.workspace import Workspace

if TYPE_CHECKING:
    from branchmig.remembered import Remembered
    from branchmig.snapshots.pgsurvey import Survey


SKIP_HOOK = {"BRANCHMIG_SKIP_HOOK": "1"}


def quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class Recovery:
    """What opening a session did about a move that had been killed."""

    operation: str
    to: str
    pid: int
    restored: bool  # the database is as it was before that move
    untouched: bool  # the move had not touched the database yet
    checked_out: str | None  # what was checked out again
    heads: tuple[str, ...]  # where the database is now
    suspect: Suspect | None  # no copy to restore: what may be half made
    finished: bool = False  # it had succeeded: only its clean-up was left, now done

    def describe(self) -> str:
        what = f"{moving(self.operation, self.to)} (pid {self.pid})"
        if self.finished:
            return f"{what} had completed when it was killed; its clean-up is now done"
        if self.restored or self.untouched:
            again = f", and '{self.checked_out}' is checked out again" if self.checked_out else ""
            return f"{what} was interrupted; the database was put back as it was before it{again}"
        if self.suspect is not None:
            return (
                f"{what} was killed while it ran the {self.suspect.direction} of "
                f"'{self.suspect.revision}' with no snapshot to restore: the database "
                f"is marked at {names(self.heads)}, but that revision may be half made; "
                "check its tables, then run: branchmig sync"
            )
        return (
            f"{what} was interrupted with no snapshot to restore: the database is at "
            f"{names(self.heads)}; run: branchmig sync"
        )


@dataclass
class Session:
    ws: Workspace
    state: State
    env: AlembicEnv
    db: DatabaseState
    dbid: DatabaseId
    progress: Progress
    notes: list[str] = field(default_factory=list)
    recovery: Recovery | None = None
    # The database as remembered (remembered.py): Alembic is not loaded and env.py has not
    # run, so this session may only restore a snapshot or record a move that runs nothing.
    remembered: bool = False
    # The database as remembered, with Alembic open: env.py has not run yet, and the move's
    # run of it checks the database it connects to before its first step.
    recalled: bool = False

    @property
    def masked(self) -> str:
        return self.dbid.masked

    @property
    def dbkey(self) -> str:
        return self.dbid.key

    def backend(self, *, terminate: bool = False) -> SnapshotBackend:
        return backend_of(self.db, self.state, terminate=terminate, progress=self.progress)


def backend_of(
    db: DatabaseState, state: State, *, terminate: bool = False, progress: Progress | None = None
) -> SnapshotBackend:
    """The snapshot backend of the project's databases (all of them, under --multidb)."""
    return backend_for(
        db.urls,
        store_dir=state.snapshot_dir,
        terminate_connections=terminate,
        progress=None if progress is quiet else progress,
    )


@contextmanager
def opened(
    ws: Workspace,
    progress: Progress = quiet,
    *,
    dry_run: bool = False,
    trust_remembered: bool = False,
    missing_ok: bool = False,
) -> Iterator[Session]:
    """The lock held, Alembic open, the database read; a killed move put back first
    (a dry run only says there is one). With ``trust_remembered``, a trusted remembered database
    (see ``trusted``) is taken as read, without running env.py for it: a move then runs
    env.py once, and checks there, before its first step, that env.py connects to that
    database at those revisions (``Session.recalled``). With ``missing_ok``, a live
    database dropped from its server is taken as missing (``DatabaseState.missing``)
    rather than refused, for the snapshot commands that need only its server."""
    state = State(ws.state_dir)
    with state.lock(), alembic_env(ws.project) as env:
        found = trusted(ws, state) if trust_remembered else None
        if found is not None:
            db, dbid = found
        else:
            try:
                db = read_database(env)
            except DatabaseError:
                gone = missing_database(env) if missing_ok else None
                if gone is None:
                    raise
                db = gone
            dbid = database_id(ws, db)
            remember(ws, state, db, dbid)
        recovery = None
        journal = state.read_journal()
        if journal is not None and not dry_run:
            recovery = recover(ws, state, env, db, dbid, journal, progress)
            if recovery.restored or (db.missing and recovery.finished):
                db = read_database(env)  # put back, or made again by a restore
        session = Session(
            ws, state, env, db, dbid, progress, recovery=recovery, recalled=found is not None
        )
        if journal is not None and dry_run:
            session.notes.append(
                f"{moving(journal.operation, journal.to)} was interrupted "
                "and is not put back by a dry run; run: branchmig status"
            )
        yield session


def database_id(ws: Workspace, db: DatabaseState) -> DatabaseId:
    return DatabaseId.of_all(db.urls, worktree=worktree_name(ws))


def worktree_name(ws: Workspace) -> str:
    """The linked worktree's name ("" for the main one)."""
    repo = ws.repo
    return "" if repo.git_dir.resolve() == repo.common_dir.resolve() else repo.git_dir.name


def remember(ws: Workspace, state: State, db: DatabaseState, dbid: DatabaseId) -> None:
    """Remember the database env.py gave, with the inputs it came from (a plain Alembic
    project on one SQLite file or one PostgreSQL database only); forget it otherwise."""
    memo = _sqlite_memo(ws, db, dbid) or _server_memo(ws, state, db, dbid)
    state.remember(worktree_name(ws), memo.as_json() if memo is not None else None)


def _sqlite_memo(ws: Workspace, db: DatabaseState, dbid: DatabaseId) -> Remembered | None:
    with chdir(ws.project.run_dir):  # a relative sqlite URL is env.py's
        path = plain_sqlite_path(db.url) if not db.multi else None
    environ = db.environ or ()
    found = remembered.inputs(ws.project, environ) if path is not None else None
    ident = remembered.identity(str(path)) if found is not None else None
    if found is None or ident is None:
        return None
    return remembered.Remembered(
        found, db.url, dbid.masked, dbid.key, str(path), *ident, environ=environ
    )


def _server_memo(
    ws: Workspace, state: State, db: DatabaseState, dbid: DatabaseId
) -> Remembered | None:
    """A PostgreSQL database, remembered for ``status`` and ``snapshot list`` when a plain
    survey of it reads the revisions env.py just read."""
    if db.multi or db.missing or db.environ is None or not db.url.startswith("postgres"):
        return None
    found = remembered.inputs(ws.project, db.environ, server=True)
    if found is None:
        return None
    try:
        backend_of(db, state)  # refuses a URL the backend would, or a missing driver
    except BranchmigError:  # not remembered then
        return None
    # A door: the PostgreSQL survey, for a PostgreSQL database only.
    from branchmig.snapshots import pgsurvey

    target = pgsurvey.Reach.of_url(parse_server_url(db.url)[1]).target()
    memo = remembered.Remembered(
        found, db.url, dbid.masked, dbid.key, "", 0, 0, "postgresql", db.environ,
        target.as_json(),
    )  # fmt: skip
    if remembered.Remembered.from_json(state.remembered(worktree_name(ws))) == memo:
        return memo  # checked when it was first remembered
    seen = pgsurvey.survey(target, folder=SnapshotFolder(state.snapshot_dir))
    if seen is None or seen.heads != tuple(sorted(db.heads)):
        return None
    return memo


def forget(ws: Workspace, state: State) -> None:
    """Forget the remembered database: the next command reads it through env.py."""
    state.remember(worktree_name(ws), None)


def recall(
    ws: Workspace, state: State, *, owned: bool = False
) -> tuple[DatabaseState, DatabaseId] | None:
    """The remembered SQLite database and its revisions, read without Alembic, when what
    env.py reads is unchanged and the file is the same one; else None. With ``owned``,
    only while its ``alembic_version`` is what branchmig last left there. (The
    fingerprint of env.py's inputs is taken last: it costs the most.)"""
    memo = remembered.Remembered.from_json(state.remembered(worktree_name(ws)))
    if memo is None or memo.kind != "sqlite":
        return None
    if remembered.identity(memo.path) != (memo.device, memo.inode):
        return None
    heads = remembered.read_heads(memo.path)
    if heads is None:
        return None
    if owned:
        owner = state.owner(memo.key)
        if owner is None or sorted(owner.heads) != sorted(heads):
            return None
    if remembered.inputs(ws.project, memo.environ) != memo.inputs:
        return None
    return (DatabaseState.single(memo.url, heads), DatabaseId(memo.url, memo.masked, memo.key))


def surveyed(
    ws: Workspace, state: State, *, others_prefix: str | None = None
) -> tuple[DatabaseState, DatabaseId, Survey] | None:
    """The remembered PostgreSQL database, its revisions, its snapshots and the databases
    named ``others_prefix…`` on its server, in one round trip without Alembic or a driver,
    while what env.py reads is unchanged; else None (then read it through env.py)."""
    memo = remembered.Remembered.from_json(state.remembered(worktree_name(ws)))
    if memo is None or memo.kind != "postgresql":
        return None
    # A door: the PostgreSQL survey, for a remembered PostgreSQL database only.
    from branchmig.snapshots import pgsurvey

    target = pgsurvey.Target.from_json(memo.server)
    if target is None or remembered.inputs(ws.project, memo.environ, server=True) != memo.inputs:
        return None
    folder = SnapshotFolder(state.snapshot_dir)
    seen = pgsurvey.survey(target, folder=folder, others_prefix=others_prefix)
    if seen is None:
        return None
    db = DatabaseState.single(memo.url, seen.heads)
    return db, DatabaseId(memo.url, memo.masked, memo.key), seen


def trusted(ws: Workspace, state: State) -> tuple[DatabaseState, DatabaseId] | None:
    """The remembered database, when it can be acted on (the lock held): remembered and
    owned (see ``recall``), no move to put back and nothing suspect. None otherwise: read
    it through env.py."""
    if state.remembered(worktree_name(ws)) is None or state.read_journal() is not None:
        return None
    found = recall(ws, state, owned=True)
    if found is None or state.suspect(found[1].key) is not None:
        return None
    return found


@contextmanager
def recalled(ws: Workspace, progress: Progress = quiet) -> Iterator[Session | None]:
    """A session on the trusted remembered database (see ``trusted``), with the lock held
    and Alembic not loaded; None when there is none: open the full session instead."""
    state = State(ws.state_dir)
    if state.remembered(worktree_name(ws)) is None:
        yield None
        return
    # As env.py would run: a relative sqlite URL names a file in the project's folder.
    with state.lock(), chdir(ws.project.run_dir):
        found = trusted(ws, state)
        if found is None:
            yield None
            return
        db, dbid = found
        yield Session(ws, state, AlembicEnv(ws.project, None), db, dbid, progress, remembered=True)


def put_back(
    backend: SnapshotBackend, state: State, journal: Journal, dispose: Callable[[], None]
) -> bool:
    """Restore the copy taken before the move, if it exists; True when it did."""
    saved = journal.safety_snapshot
    if not saved or not backend.exists(saved):
        return False
    entering = journal.restored_snapshot
    keep = None
    if entering and not backend.exists(entering):
        resaved = journal.resaved_snapshot
        if not (resaved and backend.exists(resaved)):
            keep = entering  # the live database holds it, not migrated further
    dispose()
    backend.restore(saved, keep_current_as=keep)
    state.remove_snapshot(saved)
    if entering and keep is None and not backend.exists(entering):
        state.remove_snapshot(entering)  # consumed: its content is the resaved copy
    return True


def finish_drops(backend: SnapshotBackend, state: State, journal: Journal) -> None:
    """The end of a move that succeeded: drop what it replaced, and forget the entering
    branch's snapshot that the restore consumed (not one saved again under its own key,
    as ``snapshot restore`` keeps one)."""
    for key in journal.drops:
        backend.drop(key)
        state.remove_snapshot(key)
    if journal.restored_snapshot and journal.restored_snapshot != journal.resaved_snapshot:
        state.remove_snapshot(journal.restored_snapshot)


def recover(
    ws: Workspace,
    state: State,
    env: AlembicEnv,
    db: DatabaseState,
    dbid: DatabaseId,
    journal: Journal,
    progress: Progress,
) -> Recovery:
    """Put back a move that was killed half-way (or finish one killed after it
    succeeded). Called with the lock held, so the journal's process is gone."""
    # What a copy killed half-written left, whichever step it was made for.
    SnapshotFolder(state.snapshot_dir).sweep()
    if journal.operation == "restore":
        return _recover_restore(state, env, db, journal, progress)
    if journal.phase == "done":
        return _finish_done(ws, state, env, db, dbid, journal)
    _recovering(journal, progress)
    restored = _restore_the_copy(state, env, db, journal, progress)
    untouched = not restored and journal.phase == "start"
    checked_out = _mend_the_checkout(ws, journal, restored or untouched, progress)
    heads = read_database(env).heads
    suspect = None
    if restored or untouched:
        state.set_owner(
            dbid.key,
            Owner(journal.from_branch, journal.from_commit, heads, reflog=ws.repo.reflog_size()),
        )
    elif journal.phase == "migrating" and journal.in_flight:
        direction, revision = journal.in_flight[:2]
        suspect = Suspect(journal.operation, journal.to, direction, revision, journal.pid)
        state.set_suspect(dbid.key, suspect)
    recovery = Recovery(
        journal.operation, journal.to, journal.pid, restored, untouched, checked_out, heads, suspect
    )
    if not (restored or untouched):
        progress(f"branchmig: {recovery.describe()}")
    state.clear_journal()
    return recovery


def _recovering(journal: Journal, progress: Progress) -> None:
    progress(
        f"branchmig: {moving(journal.operation, journal.to)} was interrupted "
        f"(pid {journal.pid}); recovering"
    )


def _finish_done(
    ws: Workspace,
    state: State,
    env: AlembicEnv,
    db: DatabaseState,
    dbid: DatabaseId,
    journal: Journal,
) -> Recovery:
    """A move killed after it succeeded: its drops done, the database's owner recorded."""
    if journal.safety_snapshot:
        finish_drops(backend_of(db, state), state, journal)
    heads = read_database(env).heads
    state.set_owner(
        dbid.key,
        Owner(journal.to_branch, journal.to_commit, heads, reflog=ws.repo.reflog_size()),
    )
    state.set_suspect(dbid.key, None)
    state.clear_journal()
    return Recovery(
        journal.operation, journal.to, journal.pid, False, False, None, heads, None, finished=True
    )


def _recover_restore(
    state: State, env: AlembicEnv, db: DatabaseState, journal: Journal, progress: Progress
) -> Recovery:
    """A ``snapshot restore`` killed half-way, ended by the rule every move follows: done,
    its clean-up finished (the snapshot it used up forgotten); else put back, the copy of
    the live database restored over it and the snapshot kept again under its key. With
    no copy (the live database was missing), a restore that made it is finished. Whom
    the database belongs to is not a restore's to change."""
    finished, restored, untouched = journal.phase == "done", False, False
    used = journal.restored_snapshot
    if finished:
        finish_drops(backend_of(db, state), state, journal)
    else:
        _recovering(journal, progress)
        if journal.safety_snapshot:
            restored = _restore_the_copy(state, env, db, journal, progress)
            untouched = not restored
        elif used and (journal.resaved_snapshot or not backend_of(db, state).exists(used)):
            finished = True  # the live database holds the snapshot's rows
            if not journal.resaved_snapshot:
                _used_up(state, backend_of(db, state, progress=progress), journal, progress)
        else:
            untouched = True
    try:
        heads = read_database(env).heads
    except DatabaseError:  # still missing from its server
        heads = ()
    state.clear_journal()
    return Recovery(
        journal.operation, journal.to, journal.pid, restored, untouched, None, heads, None,
        finished=finished,
    )  # fmt: skip


def _used_up(state: State, backend: SnapshotBackend, journal: Journal, progress: Progress) -> None:
    """A restore of a missing live database, killed once it made it: the snapshot it used
    up forgotten, or, when it was to be kept (``--keep``), saved again from the database
    that now holds its rows, as the restore would have done."""
    used = journal.restored_snapshot
    assert used is not None
    record = next((r for r in state.snapshots() if r.key == used), None)
    if not journal.keep_restored or record is None:
        state.remove_snapshot(used)
        return
    try:
        stored = backend.save(used)
    except BranchmigError as err:
        state.remove_snapshot(used)
        progress(
            f"branchmig: could not keep snapshot '{used}' ({err}); the database holds its "
            f"rows, save them again with: branchmig snapshot save {used}"
        )
        return
    applied = state.snapshot_applied(used) or {}
    state.add_snapshot(replace(record, size=stored.size), applied=applied)


def _restore_the_copy(
    state: State, env: AlembicEnv, db: DatabaseState, journal: Journal, progress: Progress
) -> bool:
    """The copy taken before the move restored; True when it was."""
    if not journal.safety_snapshot:
        return False
    backend = backend_of(db, state, progress=progress)
    restored = put_back(backend, state, journal, env.dispose_engines)
    if restored:
        progress(f"branchmig: restored snapshot '{journal.safety_snapshot}'")
    elif journal.phase == "start":
        backend.drop(journal.safety_snapshot)  # a save killed part-way: no use to anyone
    return restored


def _mend_the_checkout(
    ws: Workspace, journal: Journal, database_back: bool, progress: Progress
) -> str | None:
    """A switch's checkout undone: the branch it left checked out again when the database
    is back as it was there (what was checked out), or the files of a checkout git was
    killed in put back."""
    back = journal.from_branch or journal.from_commit
    repo = ws.repo
    if journal.operation != "switch":
        return None
    if (
        back
        and database_back
        and (
            repo.head_commit() != journal.from_commit
            or repo.current_branch() != journal.from_branch
        )
    ):
        repo.checkout(back, env=SKIP_HOOK)
        progress(f"branchmig: checked out '{back}' again")
        return back
    if (
        not journal.checked_out
        and journal.from_commit
        and journal.to_commit
        and repo.head_commit() == journal.from_commit
    ):
        # Killed while git was checking out: HEAD has not moved, but some files may be
        # the target's already. The switch began on a clean tree, so HEAD's versions are
        # what the tree held: put them back rather than take the half-made tree for a
        # state of the project.
        mended = repo.undo_partial_checkout(
            journal.from_commit, journal.to_commit, since=journal.started
        )
        if mended:
            progress(
                f"branchmig: the checkout of '{journal.to}' was interrupted; "
                f"its files are put back as {back or journal.from_commit[:7]} has them"
            )
    return None


def names(heads: tuple[str, ...]) -> str:
    return ", ".join(f"'{h}'" for h in heads) or "base (no revision)"
