"""Prove a branch's own migrations on a scratch database, and find drift in the live one.

``verify`` makes a scratch database of the project's own backend (a temporary SQLite file,
or a new database on the PostgreSQL or MariaDB/MySQL server of the project's URL), upgrades
it to the revisions REF shares with BASE, then runs each revision REF adds up, down and up
again, comparing the schema before its upgrade with the schema after its downgrade.
``drift`` builds a scratch database from empty to the live database's heads and compares
the two. The live database is never written, nor the checkout: migrations run through the
project's own env.py, pointed at the scratch database by ``sqlalchemy.url``, and the
scratch database is dropped afterwards, whatever happens.

This module is the home of the scratch databases (made and dropped here) and of schema
inspection (SQLAlchemy's inspector); the comparison itself is ``schema.compare``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal

from branchmig.analysis import too_many_heads
from branchmig.commitcode import CodeAt, code_for
from branchmig.downgrades import fix_for_failure
from branchmig.errors import (
    BranchmigError,
    ConfigError,
    DatabaseError,
    GraphError,
    PlanError,
    UsageError,
    first_line,
)
from branchmig.graph import Graph, Revision
from branchmig.plan import latest_common, make_plan
from branchmig.schema import (
    Check,
    Column,
    Difference,
    EnumType,
    ForeignKey,
    Index,
    Schema,
    Table,
    compare_each,
)
from branchmig.scripts import read_text_anywhere
from branchmig.urls import (
    backend_of,
    copy_url,
    dialect_named,
    mask_url,
    read_only_url,
    same_database,
    sqlite_path,
    sync_url,
)
from branchmig.workspace import WORKTREE, Workspace, describe_ref

if TYPE_CHECKING:
    from branchmig.databases import DatabaseState
    from branchmig.runner import Phase

Progress = Callable[[str], None]
Direction = Literal["upgrade", "downgrade"]
_ROUND_TRIP: tuple[Direction, ...] = ("upgrade", "downgrade", "upgrade")
Outcome = Literal["ok", "failed", "left traces", "not run"]
FindingKind = Literal["upgrade-failed", "downgrade-failed", "trace", "upgrade-again-failed"]

SCRATCH_PREFIX = "bm_verify_"  # every scratch database's name starts so: a leftover is ours


def _quiet(_: str) -> None:
    return None


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """Something wrong with one revision's migrations, said in one line."""

    revision: str
    path: str
    kind: FindingKind
    message: str
    differences: tuple[Difference, ...] = ()


@dataclass(frozen=True)
class RevisionCheck:
    """How each of a revision's three runs went."""

    revision: str
    path: str
    upgrade: Outcome = "not run"
    downgrade: Outcome = "not run"
    upgrade_again: Outcome = "not run"


@dataclass(frozen=True)
class VerifyResult:
    ref: str  # as given ("" is the working tree)
    against: str
    backend: str  # "sqlite", "postgresql", "mysql"
    shared: tuple[str, ...]  # the latest revisions REF shares with BASE
    checks: tuple[RevisionCheck, ...]
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass(frozen=True)
class DriftResult:
    database: str  # masked URL of the live database
    backend: str
    heads: tuple[str, ...]
    differences: tuple[Difference, ...]  # old: what the migrations make, new: the live one

    @property
    def ok(self) -> bool:
        return not self.differences


# -- the commands -------------------------------------------------------------------------


def verify(
    ws: Workspace,
    *,
    ref: str = WORKTREE,
    against: str | None = None,
    data: bool = False,
    progress: Progress = _quiet,
) -> VerifyResult:
    """Run each revision ``ref`` adds to ``against`` (default: ``default_base``) up, down
    and up again on a scratch database, and report what fails or is left behind: schema,
    and how many rows each table holds. With ``data`` the scratch database starts as a
    copy of the live one (brought to the revisions ``ref`` shares with ``against``), and
    each table's rows are compared too."""
    from branchmig.runner import alembic_env, start_loading_alembic

    start_loading_alembic()
    base = against if against is not None else default_base(ws)
    _, ours = ws.graph_at(ref)
    if len(ours.heads) > ws.project.settings.expected_heads:
        raise GraphError(too_many_heads(ours, ref))  # as check says: nothing is run
    _, theirs = ws.graph_at(base)
    plan = make_plan(applied_heads=theirs.heads, source=theirs, target=ours)
    shared = ours.ancestors(plan.common)
    texts = _Texts(ws, ours, ref)
    with alembic_env(ws.project) as env:
        lives = _live_urls(env)
        backend = _backends(lives.values())
        checks: list[RevisionCheck] = []
        findings: list[Finding] = []
        if plan.upgrade:
            progress(
                f"branchmig: verifying {len(plan.upgrade)} revision"
                f"{'s' if len(plan.upgrade) != 1 else ''} of {describe_ref(ref)} "
                f"against {describe_ref(base)} on "
                f"{'a copy of the live' if data else 'a scratch'} {backend} database"
            )
        with scratch_databases(lives, seeded=data, progress=progress) as scratches:
            runner = _Runner(env, ours, texts, scratches)
            runner.data = data
            with runner.pointed_at_scratch():
                runner.bring_to(shared, shared_with=base)
                _check_each(runner, plan.upgrade, checks, findings, progress)
    return VerifyResult(ref, base, backend, plan.common, tuple(checks), tuple(findings))


def _check_each(
    runner: _Runner,
    revisions: Sequence[str],
    checks: list[RevisionCheck],
    findings: list[Finding],
    progress: Progress,
) -> None:
    graph = runner.graph
    before = runner.schema()
    pending = list(revisions)
    while pending:
        trips = runner.round_trips(pending, before, progress)
        for trip in trips:
            checks.append(trip.check)
            findings.extend(trip.findings)
        pending = pending[len(trips) :]
        last = trips[-1]
        if last.check.upgrade == "failed":
            # What builds on it cannot be reached: the rest is not run.
            checks.extend(RevisionCheck(r, graph.revisions[r].path) for r in pending)
            return
        # After a failure or traces, the next revision starts from a database built
        # straight up.
        before = last.after if last.after is not None else runner.rebuild(last.check.revision)


@dataclass
class _Trip:
    """One revision's round trip: how each run went, what was found, and the schema it
    leaves (None: the next revision needs a database rebuilt straight up)."""

    check: RevisionCheck
    findings: list[Finding]
    after: dict[str, Schema] | None = None
    steps: int = 0  # how many of the three runs completed


_KINDS: tuple[FindingKind, ...] = ("upgrade-failed", "downgrade-failed", "upgrade-again-failed")
_RUNS = ("upgrade", "downgrade", "upgrade_again")


def _as_if_run_alone() -> None:
    """Each step of a run of env.py starts as a run of its own would: SQLAlchemy notes on
    Alembic's DDL runner which named types (PostgreSQL's enums) it made, and makes each
    only once per run, so an upgrade run again after a downgrade that forgot the type
    would not trip over it as ``alembic upgrade`` does."""
    from alembic import context

    memo = getattr(context.get_context().impl, "memo", None)
    if isinstance(memo, dict):
        memo.clear()


class _StopHere(BranchmigError):
    """Raised between two steps to end a run of env.py: what follows needs a rebuilt
    database."""


def _with(check: RevisionCheck, **outcomes: Outcome) -> RevisionCheck:
    from dataclasses import replace

    return replace(check, **outcomes)


def drift(ws: Workspace, *, progress: Progress = _quiet) -> DriftResult:
    """Compare the live database's schema with a scratch database upgraded from empty to
    the same heads (with the working tree's scripts where it has them)."""
    from branchmig.runner import alembic_env, read_database, start_loading_alembic

    start_loading_alembic()
    _, tree = ws.graph_at(WORKTREE)
    with alembic_env(ws.project) as env:
        for configured in _live_urls(env).values():
            if _backend(configured) == "sqlite" and not sqlite_path(configured).is_file():
                raise DatabaseError(
                    f"There is no database at {mask_url(configured)} to compare; "
                    "run: branchmig sync"
                )
        live = read_database(env)
        lives = dict(live.urls)
        backend = _backends(lives.values())
        graph, ref = _graph_holding(ws, tree, live)
        revisions = graph.topological(graph.ancestors(live.heads))
        progress(
            f"branchmig: building a scratch {backend} database to "
            f"{', '.join(live.heads) or 'base'} ({len(revisions)} revision"
            f"{'s' if len(revisions) != 1 else ''})"
        )
        with scratch_databases(lives, progress=progress) as scratches:
            runner = _Runner(env, graph, _Texts(ws, graph, ref), scratches)
            with runner.pointed_at_scratch():
                runner.upgrade(revisions, shared_with=None)
                expected = runner.schema()
        actual = {name: inspect_schema(read_only_url(lives[name])) for name in expected}
    return DriftResult(mask_url(live.url), backend, live.heads, compare_each(expected, actual))


@dataclass(frozen=True)
class ModelsResult:
    heads: tuple[str, ...]  # of the working tree, where the scratch database was built
    differences: tuple[str, ...]  # one line each: what a new migration would have to do

    @property
    def ok(self) -> bool:
        return not self.differences


def models(ws: Workspace, *, progress: Progress = _quiet) -> ModelsResult:
    """Compare the models (env.py's ``target_metadata``) with a scratch database built
    from empty to the working tree's heads, as ``alembic check`` compares them with the
    live one: a model change that no migration makes is named."""
    from branchmig.runner import alembic_env, compare_models, start_loading_alembic

    start_loading_alembic()
    _, tree = ws.graph_at(WORKTREE)
    revisions = tree.topological(tree.ancestors(tree.heads))
    with alembic_env(ws.project) as env:
        lives = _live_urls(env)
        with scratch_databases(lives, progress=progress) as scratches:
            runner = _Runner(env, tree, _Texts(ws, tree, WORKTREE), scratches)
            with runner.pointed_at_scratch():
                if compare_models(env) is None:  # asked first: an empty database is quick
                    raise ConfigError(
                        "env.py gives no target_metadata, so there are no models to compare "
                        "with the migrations; set target_metadata = Base.metadata (your "
                        "models' MetaData) in env.py"
                    )
                progress(
                    f"branchmig: building a scratch {runner.backend} database to "
                    f"{', '.join(tree.heads) or 'base'} to compare with the models"
                )
                runner.upgrade(revisions, shared_with=None)
                found = compare_models(env) or []
    several = len(found) > 1
    return ModelsResult(
        tree.heads,
        tuple(
            (f"database '{name or '<default>'}': " if several else "") + describe_model_diff(d)
            for name, diffs in found
            for d in diffs
        ),
    )


def describe_model_diff(diff: Any) -> str:
    """One of autogenerate's differences, as ``alembic check`` lists them, by name: a
    tuple ``("add_column", schema, table, column)``, or a list of ``modify_*`` tuples."""
    if isinstance(diff, list):
        return "; ".join(describe_model_diff(d) for d in diff)
    op = str(diff[0])
    if op.startswith("modify_"):  # (op, schema, table, column, existing, old, new)
        return f"{op} '{diff[2]}.{diff[3]}': {diff[5]!r} in the database, {diff[6]!r} in the models"
    if op in ("add_column", "remove_column"):
        return f"{op} '{diff[2]}.{diff[3].name}'"
    thing = diff[-1]
    name = getattr(thing, "name", None) or str(thing)
    table = getattr(getattr(thing, "table", None), "name", None)
    return f"{op} '{table}.{name}'" if table and table != name else f"{op} '{name}'"


def default_base(ws: Workspace) -> str:
    """The current branch's upstream, else the remote's default branch, else ``main`` or
    ``master``. An upstream of the branch's own name (``git push -u`` of a feature
    branch) is the branch itself, not what it is verified against."""
    repo = ws.repo
    upstream = repo.upstream()
    current = repo.current_branch()
    if upstream and upstream.partition("/")[2] != current:
        return upstream
    remote = repo.remote_default()
    if remote is not None:
        return remote[0]
    for name in ("main", "master"):
        if repo.commit_or_none(name) is not None:
            return name
    raise UsageError(
        "Nothing to verify against: this branch has no upstream and the "
        "repository no origin/HEAD, main or master; name the base, e.g. run: "
        "branchmig verify --against origin/main"
    )


# -- messages -------------------------------------------------------------------------------


def describe_trace(diff: Difference) -> str:
    """One difference between before an upgrade (old) and after its downgrade (new)."""
    if diff.kind == "rows":
        return f"table {diff.where} holds {diff.new}, {diff.old} before the upgrade"
    if diff.kind == "content":
        return f"table {diff.where} holds as many rows as before the upgrade, but not the same ones"
    if diff.change == "added":
        return f"{diff.kind} {diff.where} is left behind"
    if diff.change == "removed":
        return f"{diff.kind} {diff.where} is gone (it was there before the upgrade)"
    return f"{diff.kind} {diff.where} is {diff.new}, was {diff.old} before the upgrade"


def _trace_message(rev: Revision, left: Sequence[Difference]) -> str:
    return (
        f"The downgrade of '{rev.id}' ({rev.path}) does not undo its upgrade: "
        f"{'; '.join(describe_trace(d) for d in left)}. Undo it in downgrade()"
    )


# -- running the migrations on the scratch database ----------------------------------------


class _Texts:
    """The scripts' texts at a ref, read when a step needs them."""

    def __init__(self, ws: Workspace, graph: Graph, ref: str) -> None:
        self.ws, self.graph, self.ref = ws, graph, ref
        self._read: dict[str, bytes] = {}
        self._code: dict[frozenset[str], CodeAt | None] = {}

    def __call__(self, rev_id: str) -> tuple[Path, bytes]:
        rev = self.graph.revisions[rev_id]
        if rev_id not in self._read:
            self._read[rev_id] = self._text(rev)
        return self.ws.repo.top / rev.path, self._read[rev_id]

    def preload(self, revisions: Iterable[str]) -> None:
        """Read the scripts of ``revisions`` that git has in one run of git (a blob's
        text is the same wherever it is read from)."""
        if self.ref == WORKTREE:
            return
        blobs = {
            self.graph.revisions[r].blob: r
            for r in revisions
            if r not in self._read and self.graph.revisions[r].blob
        }
        for blob, data in self.ws.repo.read_blobs(blobs, missing_ok=True):
            self._read[blobs[blob]] = data

    def code(self, revisions: Sequence[str]) -> CodeAt | None:
        """The code the scripts of ``revisions`` import from (None: the working tree's)."""
        if self.ref == WORKTREE:
            return None
        key = frozenset(revisions)
        if key not in self._code:
            self._code[key] = code_for(
                self.ws, [self.graph.revisions[r] for r in revisions], first=(self._commit,)
            )
        return self._code[key]

    @cached_property
    def _commit(self) -> str | None:
        return self.ws.repo.commit_or_none(self.ref)

    def _text(self, rev: Revision) -> bytes:
        if self.ref == WORKTREE:
            path = self.ws.repo.top / rev.path
            if path.is_file():
                return path.read_bytes()
        from branchmig.state import State

        text = State(self.ws.state_dir).kept_script(rev.blob) or read_text_anywhere(
            self.ws.repo, rev
        )
        if text is None:
            raise PlanError(
                f"The script of '{rev.id}' ({rev.path}, blob {rev.blob[:12]}) is "
                "not in git; commit it, or run: branchmig verify ."
            )
        return text


class _Runner:
    """Steps through the project's env.py on the scratch database, knowing which
    revisions it holds."""

    def __init__(
        self, env: Any, graph: Graph, texts: _Texts, scratches: Mapping[str, Scratch]
    ) -> None:
        self.env, self.graph, self.texts = env, graph, texts
        self.scratches = dict(scratches)  # by database name ("" the default, else a bind)
        self.reached: dict[str, Scratch] = {}  # the ones env.py migrates
        self.backend = _backends(s.url for s in self.scratches.values())
        self.applied: set[str] = set()
        self.start: set[str] = set()  # what a scratch database holds when (re)made
        self.data = False  # compare each table's rows too, not only how many
        self.reflected: Reflected = {}  # SQLite's tables, read once for each SQL

    @contextlib.contextmanager
    def pointed_at_scratch(self) -> Iterator[None]:
        """env.py pointed at the scratch databases: plain Alembic's by ``sqlalchemy.url``,
        a Flask app's engines replaced in-process (``flask_engines_at``). Then env.py is
        run once to make sure it really connects there: one that takes its URL elsewhere
        is refused before any migration runs."""
        from branchmig.runner import flask_engines_at, read_database

        with contextlib.ExitStack() as stack:
            if self.env.flask_app is not None:
                stack.enter_context(
                    flask_engines_at(self.env, {n: s.url for n, s in self.scratches.items()})
                )
            else:
                self.env.config.set_main_option(
                    "sqlalchemy.url", self.scratches[""].url.replace("%", "%%")
                )
            for db in read_database(self.env).databases:
                scratch = next(
                    (s for s in self.scratches.values() if same_database(db.url, s.url)), None
                )
                if scratch is None:
                    raise ConfigError(
                        f"env.py connects to {mask_url(db.url)}, not to the "
                        f"{_POINTED[self.env.flask_app is not None]}"
                    )
                self.reached[db.name] = scratch
                self.start = self._applied_in(db.heads)
            self.applied = set(self.start)
            yield

    def _applied_in(self, heads: Sequence[str]) -> set[str]:
        """What a database at ``heads`` holds (a copy of the live one), in this graph."""
        unknown = [h for h in heads if h not in self.graph]
        if unknown:
            raise PlanError(
                f"The live database is at {', '.join(repr(h) for h in unknown)}, which the "
                "scripts being verified do not have, so its copy cannot be brought to where "
                "the verification starts; switch to the branch being verified, or run "
                "verify without --data"
            )
        return set(self.graph.ancestors(heads))

    def bring_to(self, wanted: Iterable[str], *, shared_with: str | None) -> None:
        """The scratch database from what it holds to exactly ``wanted``: the revisions
        beyond it (a copy of the live database) reverted, the missing ones applied."""
        wanted = set(wanted)
        beyond = self.applied - wanted
        if beyond:
            try:
                self._run("downgrade", self.graph.topological(beyond)[::-1])
            except DatabaseError as err:
                raise DatabaseError(
                    f"{err}, reverting the copy of the live database to where the "
                    "verification starts; fix that script, or run verify without --data"
                ) from err
        self.upgrade(self.graph.topological(wanted - self.applied), shared_with=shared_with)

    @property
    def heads(self) -> tuple[str, ...]:
        return latest_common(self.applied, self.graph)

    def upgrade(self, revisions: Sequence[str], *, shared_with: str | None) -> None:
        from branchmig.runner import StepFailed

        try:
            self._run("upgrade", revisions)
        except StepFailed as err:
            rev = self.graph.revisions[err.revision]
            if shared_with is None:
                raise DatabaseError(
                    f"{err} ({rev.path}); fix that script, then run the command again"
                ) from err
            raise DatabaseError(
                f"{err} ({rev.path}), a revision {describe_ref(shared_with)} has too, so "
                "nothing after it can be verified; fix it there first, or choose another "
                "base: branchmig verify --against REF"
            ) from err

    def step(self, direction: Literal["upgrade", "downgrade"], rev_id: str) -> None:
        self._run(direction, (rev_id,))

    def _run(self, direction: Literal["upgrade", "downgrade"], revisions: Sequence[str]) -> None:
        from branchmig.runner import run_phases

        if not revisions:
            return
        run_phases(self.env, [self._phase(direction, revisions, self.applied)])
        if direction == "upgrade":
            self.applied |= set(revisions)
        else:
            self.applied -= set(revisions)

    def _phase(
        self,
        direction: Direction,
        revisions: Sequence[str],
        applied: set[str],
        code: CodeAt | None | Literal["theirs"] = "theirs",
    ) -> Phase:
        """``code``: the code the scripts import from ("theirs": the code of
        ``revisions``)."""
        from branchmig.runner import Phase

        scope = set(self.graph.ancestors([*applied, *revisions]))
        texts = {r: self.texts(r) for r in revisions}
        return Phase(
            direction,
            tuple(revisions),
            self.graph,
            scope,
            lambda: texts,
            start_heads=latest_common(applied, self.graph),
            code=self.texts.code(revisions) if code == "theirs" else code,
        )

    def round_trips(
        self, revisions: Sequence[str], before: dict[str, Schema], progress: Progress
    ) -> list[_Trip]:
        """Each revision run up, down and up again, from the first of ``revisions`` on,
        until one fails or leaves traces (the next then needs a rebuilt database). A
        project with one database runs them all in one run of env.py: one connection
        (and, where DDL is transactional, one transaction), the schema read through it
        between the steps. With several databases env.py runs the steps of each database
        in turn, so each step is a run of its own and the revision's schemas are read
        together."""
        if len(self.reached) != 1:
            return [self._trip_by_steps(revisions[0], before, progress)]
        from branchmig.runner import StepFailed, run_phases

        trips: list[_Trip] = []
        phases, applied = [], set(self.applied)
        self.texts.preload(revisions)
        code = self.texts.code(revisions)  # the commit holding them all: one for all
        for rev_id in revisions:
            for direction in _ROUND_TRIP:
                phases.append(self._phase(direction, (rev_id,), applied, code))
                applied = applied | {rev_id} if direction == "upgrade" else applied - {rev_id}

        def on_start(direction: str, rev_id: str) -> None:
            _as_if_run_alone()
            if not trips or trips[-1].steps == 3:
                trips.append(self._new_trip(rev_id, progress))

        def on_step(direction: str, rev_id: str) -> None:
            nonlocal before
            if direction == "upgrade":
                self.applied.add(rev_id)
            else:
                self.applied.discard(rev_id)
            trip = trips[-1]
            self._stepped(trip, before, self._schema_here)
            if trip.steps == 3 and trip.after is None:
                raise _StopHere("traces: rebuild")
            before = trip.after or before

        try:
            run_phases(self.env, phases, on_start=on_start, on_step=on_step)
        except _StopHere:
            pass
        except StepFailed as err:
            if not trips:
                raise
            self._failed(trips[-1], err)
        return trips

    def _trip_by_steps(self, rev_id: str, before: dict[str, Schema], progress: Progress) -> _Trip:
        from branchmig.runner import StepFailed

        trip = self._new_trip(rev_id, progress)
        try:
            for direction in _ROUND_TRIP:
                self.step(direction, rev_id)
                self._stepped(trip, before, self.schema)
        except StepFailed as err:
            self._failed(trip, err)
        return trip

    def _new_trip(self, rev_id: str, progress: Progress) -> _Trip:
        progress(f"  {rev_id}: upgrade, downgrade, upgrade again")
        return _Trip(RevisionCheck(rev_id, self.graph.revisions[rev_id].path), [])

    def _stepped(
        self, trip: _Trip, before: dict[str, Schema], schema: Callable[[], dict[str, Schema]]
    ) -> None:
        """One more of ``trip``'s runs went through: after the downgrade the schema is
        compared with ``before``; after the upgrade again, the schema is what the next
        revision starts from, unless traces were left."""
        trip.steps += 1
        if trip.steps == 1:
            trip.check = _with(trip.check, upgrade="ok")
        elif trip.steps == 2:
            left = compare_each(before, schema())
            rev = self.graph.revisions[trip.check.revision]
            if left:
                trip.findings.append(
                    Finding(rev.id, rev.path, "trace", _trace_message(rev, left), left)
                )
            trip.check = _with(trip.check, downgrade="left traces" if left else "ok")
        else:
            trip.check = _with(trip.check, upgrade_again="ok")
            trip.after = None if trip.findings else schema()

    def _failed(self, trip: _Trip, err: Exception) -> None:
        rev = self.graph.revisions[trip.check.revision]
        trip.findings.append(self.failure(rev, _KINDS[trip.steps], err))
        failed: dict[str, Outcome] = {_RUNS[trip.steps]: "failed"}
        trip.check = _with(trip.check, **failed)
        trip.after = None

    def _schema_here(self) -> dict[str, Schema]:
        """The schema of the one database env.py is migrating, read through the
        connection it migrates with (inside its transaction), between two steps."""
        from alembic import context

        ((name, scratch),) = self.reached.items()
        try:
            schema = inspect_connection(
                context.get_bind(), rows=True, content=self.data, reflected=self.reflected
            )
        except Exception as err:
            raise DatabaseError(
                f"Cannot read the schema of {mask_url(scratch.url)}: {first_line(err)}"
            ) from err
        return {name: schema}

    def schema(self) -> dict[str, Schema]:
        return {
            name: inspect_schema(s.url, rows=True, content=self.data, reflected=self.reflected)
            for name, s in self.reached.items()
        }

    def rebuild(self, rev_id: str) -> dict[str, Schema]:
        """A fresh scratch database with everything up to ``rev_id`` applied straight up:
        where the next revision starts after this one failed or left traces."""
        wanted = self.graph.ancestors([*self.applied, rev_id])
        for scratch in {id(s): s for s in self.scratches.values()}.values():
            scratch.reset()
        self.applied = set(self.start)
        self.bring_to(wanted, shared_with=None)
        return self.schema()

    def failure(self, rev: Revision, kind: FindingKind, err: Exception) -> Finding:
        cause = str(err).partition(" failed: ")[2] or str(err)
        what = {
            "upgrade-failed": "The upgrade of",
            "downgrade-failed": "The downgrade of",
            "upgrade-again-failed": "Run again after its downgrade, the upgrade of",
        }[kind]
        message = f"{what} '{rev.id}' ({rev.path}) raises {cause.rstrip('. ')}"
        if self.backend == "sqlite":
            function = "downgrade" if kind == "downgrade-failed" else "upgrade"
            fix = fix_for_failure(self.texts(rev.id)[1], rev.id, function, cause, rev.path)
            if fix:
                message += f". To fix it: {fix}"
        return Finding(rev.id, rev.path, kind, message)


def _graph_holding(ws: Workspace, tree: Graph, live: DatabaseState) -> tuple[Graph, str]:
    """The working tree's graph when it has the live heads, else the scripts that applied
    them (branchmig's copies, the refs): drift is measured against the code first."""
    heads = live.heads
    if all(h in tree for h in heads):
        return tree, WORKTREE
    from branchmig.session import database_id
    from branchmig.state import State
    from branchmig.switching import applied_source

    dbid = database_id(ws, live)
    return applied_source(
        ws, State(ws.state_dir), heads, dbid.key, previous=None, target=tree
    ), "applied"


# -- the scratch database --------------------------------------------------------------------


class Scratch:
    """A scratch database beside the live one: ``url`` (password included: never print
    it), made empty again by ``reset``, gone after ``drop``."""

    def __init__(self, live_url: str, folder: Path, *, seeded: bool = False) -> None:
        from sqlalchemy.engine import make_url

        self.backend = _backend(live_url)
        self._live = make_url(live_url)
        self._live_url = live_url
        self._folder = folder
        self.name = scratch_name(os.getpid(), secrets.token_hex(4))
        # Seeded: a copy of the live database, made by its snapshot backend.
        self._copies = None if not seeded else _snapshot_backend(live_url, folder)
        self._key = f"verify-{secrets.token_hex(4)}"
        self._engine: Any = None  # to the server, once one connected
        # The live URL's driver (aiosqlite, asyncpg), for env.py.
        self.url = copy_url(
            live_url,
            self.backend,
            str(folder / "scratch.db") if self.backend == "sqlite" else self.name,
        )

    def create(self) -> None:
        if self._copies is not None:
            location = self._copies.save(self._key).location
            if self.backend != "sqlite" and "/" in location:
                raise DatabaseError(
                    f"The copy of {mask_url(self._live.render_as_string())} is a dump, not a "
                    "database: --data needs the right to create databases (CREATEDB)"
                )
            self.url = copy_url(self._live_url, self.backend, location)
            return
        if self.backend == "sqlite":
            return
        from sqlalchemy import text

        with self._server() as conn:
            if self.backend == "postgresql":
                conn.execute(text(f'CREATE DATABASE "{self.name}"'))
                return
            charset = conn.execute(
                text(
                    "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM "
                    "information_schema.SCHEMATA WHERE SCHEMA_NAME = :name"
                ),
                {"name": self._live.database},
            ).first()
            suffix = (
                f" CHARACTER SET {charset[0]} COLLATE {charset[1]}" if charset is not None else ""
            )
            conn.execute(text(f"CREATE DATABASE `{self.name}`{suffix}"))

    def drop(self) -> None:
        if self._copies is not None:
            self._copies.drop(self._key)
            return
        if self.backend == "sqlite":
            for path in self._folder.glob("scratch.db*"):
                path.unlink()
            return
        self.drop_database(self.name)

    def leftovers(self) -> list[str]:
        """The scratch databases on the server (any verify's, this one's included)."""
        if self.backend == "sqlite":
            return []
        from sqlalchemy import text

        with self._server() as conn:
            if self.backend == "mysql":
                rows = conn.execute(text("SHOW DATABASES LIKE 'bm\\_verify\\_%'"))
            else:
                rows = conn.execute(
                    text("SELECT datname FROM pg_database WHERE datname LIKE 'bm\\_verify\\_%'")
                )
            return sorted(str(r[0]) for r in rows)

    def drop_database(self, name: str) -> None:
        from sqlalchemy import text

        with self._server() as conn:
            if self.backend == "mysql":
                conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
                return
            try:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except Exception:  # noqa: BLE001 - PostgreSQL < 13 has no FORCE
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name"
                    ),
                    {"name": name},
                )
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))

    def reset(self) -> None:
        self.drop()
        self.create()

    @contextlib.contextmanager
    def _server(self) -> Iterator[Any]:
        """An autocommit connection to the live database's server, on a database that is
        there: the server's own (``postgres``, ``template1``), else (a role that may
        connect only there) the live one, which is thus opened only as a last resort."""
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url
        from sqlalchemy.pool import NullPool

        if self._engine is not None:  # the one that worked: its dialect is set up
            with self._engine.connect() as conn:
                yield conn
            return
        if self.backend == "mysql":
            candidates: list[str | None] = [None]
        else:
            candidates = ["postgres", "template1", self._live.database]
        failure: Exception | None = None
        server = make_url(sync_url(self._live.render_as_string(hide_password=False)))
        for database in candidates:
            try:
                engine = create_engine(
                    server._replace(database=database),  # None: no database
                    isolation_level="AUTOCOMMIT",
                    poolclass=NullPool,
                )
            except ImportError as err:
                extra = "postgres" if self.backend == "postgresql" else "mysql"
                raise DatabaseError(
                    f"The database driver is not installed ({err}); run: "
                    f"pip install 'branchmig[{extra}]'"
                ) from err
            try:
                conn = engine.connect()
            except Exception as err:  # noqa: BLE001 - try the next database
                failure = err
                engine.dispose()
                continue
            self._engine = engine  # NullPool: it holds no connection
            try:
                yield conn
            finally:
                conn.close()
            return
        raise DatabaseError(
            f"Cannot reach the server of {mask_url(self._live.render_as_string())} to make a "
            f"scratch database: {first_line(failure)}; check that it is running"
        )


def _snapshot_backend(live_url: str, folder: Path) -> Any:
    from branchmig.snapshots import backend_for_url

    return backend_for_url(live_url, store_dir=folder)


@contextlib.contextmanager
def scratch_database(
    live_url: str, *, seeded: bool = False, progress: Progress = _quiet
) -> Iterator[Scratch]:
    """A new scratch database of the live one's backend (on its server), empty or (with
    ``seeded``) a copy of the live one, dropped when the block ends, on an error, Ctrl-C
    or SIGTERM as well."""
    parent = None if seeded else _memory_folder()
    with (
        tempfile.TemporaryDirectory(prefix="branchmig-verify-", dir=parent) as folder,
        _sigterm_interrupts(),
    ):
        scratch = Scratch(live_url, Path(folder), seeded=seeded)
        try:
            for name in drop_dead_scratches(scratch):
                progress(f"branchmig: dropped the scratch database '{name}' of a verify killed")
        except Exception as err:  # noqa: BLE001 - a leftover never stops this run
            progress(
                "branchmig: warning: could not drop the scratch databases of killed runs: "
                f"{first_line(err)}"
            )
        try:
            scratch.create()
        except BranchmigError:
            raise
        except Exception as err:  # noqa: BLE001 - the server's refusal is the message
            raise DatabaseError(
                f"Cannot create a scratch database on the server of {mask_url(live_url)}: "
                f"{first_line(err)}; the user in the URL needs the right to create "
                "databases (CREATEDB)"
            ) from err
        try:
            yield scratch
        finally:
            try:
                scratch.drop()
            except Exception as err:  # noqa: BLE001 - do not hide the error that got here
                progress(
                    f"branchmig: warning: could not drop the scratch database "
                    f"'{scratch.name}': {first_line(err)}; drop it by hand"
                )


def _memory_folder(*, room: int = 512 << 20) -> str | None:
    """A folder in memory (Linux's /dev/shm) when it has ``room`` to spare: an empty
    SQLite scratch file lives there, as nothing of it needs to reach the disk (its every
    commit would wait for it). None: the system's temporary folder."""
    try:
        stat = os.statvfs("/dev/shm")
    except OSError:
        return None
    if stat.f_bavail * stat.f_frsize < room or not os.access("/dev/shm", os.W_OK):
        return None
    return "/dev/shm"


def scratch_name(pid: int, token: str) -> str:
    """``bm_verify_<pid>_<machine><boot>_<token>``: whose it is, so that a later run can
    tell a killed run's database (its machine, and a process gone or another boot) from
    a live one's."""
    machine, boot = _machine_and_boot()
    return f"{SCRATCH_PREFIX}{pid}_{machine}{boot}_{token}"


def _machine_and_boot() -> tuple[str, str]:
    import hashlib
    import socket

    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""  # not Linux: only the pid tells, on this machine
    machine = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
    return machine, hashlib.sha256(boot.encode()).hexdigest()[:6]


def scratch_is_dead(name: str) -> bool | None:
    """Whether the verify that made scratch database ``name`` is gone; None when this
    machine cannot tell (made on another machine, or by an earlier branchmig, whose names
    carry only a pid)."""
    parts = name[len(SCRATCH_PREFIX) :].split("_")
    if not name.startswith(SCRATCH_PREFIX) or len(parts) != 3 or not parts[0].isdigit():
        return None
    machine, boot = _machine_and_boot()
    if len(parts[1]) != 12 or parts[1][:6] != machine:
        return None
    if parts[1][6:] != boot:
        return True  # made before this machine started again
    try:
        os.kill(int(parts[0]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


def dead_scratches(live_url: str) -> list[str]:
    """The scratch databases of killed verify runs on the server of ``live_url``."""
    with tempfile.TemporaryDirectory(prefix="branchmig-verify-") as folder:
        return [n for n in Scratch(live_url, Path(folder)).leftovers() if scratch_is_dead(n)]


def drop_dead_scratches(scratch: Scratch) -> list[str]:
    """Drop the scratch databases of killed verify runs on ``scratch``'s server; their
    names."""
    dead = [name for name in scratch.leftovers() if scratch_is_dead(name)]
    for name in dead:
        scratch.drop_database(name)
    return dead


def drop_dead_scratches_of(live_url: str) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="branchmig-verify-") as folder:
        return drop_dead_scratches(Scratch(live_url, Path(folder)))


@contextlib.contextmanager
def scratch_databases(
    lives: Mapping[str, str], *, seeded: bool = False, progress: Progress = _quiet
) -> Iterator[dict[str, Scratch]]:
    """A scratch database for each live one (by name; two on one URL share one), all
    dropped when the block ends."""
    with contextlib.ExitStack() as stack:
        made: dict[str, Scratch] = {}
        scratches: dict[str, Scratch] = {}
        for name, url in lives.items():
            if url not in made:
                made[url] = stack.enter_context(
                    scratch_database(url, seeded=seeded, progress=progress)
                )
            scratches[name] = made[url]
        yield scratches


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt meanwhile, so the scratch database is dropped when
    CI cancels a job too."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- reading a schema --------------------------------------------------------------------------


def inspect_schema(
    url: str, *, rows: bool = False, content: bool = False, reflected: Reflected | None = None
) -> Schema:
    """Tables (without ``alembic_version`` and branchmig's own), their columns, primary
    keys, indexes, unique constraints, foreign keys, CHECK constraints (SQLite's read from
    the table's SQL) and comments (where the dialect keeps them), and PostgreSQL's enum
    types, as SQLAlchemy's inspector reports them; with ``rows`` each table's row count,
    with ``content`` a checksum of its rows."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(sync_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return inspect_connection(conn, rows=rows, content=content, reflected=reflected)
    except Exception as err:
        raise DatabaseError(
            f"Cannot read the schema of {mask_url(url)}: {first_line(err)}"
        ) from err
    finally:
        engine.dispose()


def inspect_connection(
    conn: Any, *, rows: bool = False, content: bool = False, reflected: Reflected | None = None
) -> Schema:
    """``inspect_schema`` through an open connection. ``reflected``: the SQLite tables
    read before, by their SQL, to take again rather than read again."""
    from sqlalchemy import inspect

    inspector = inspect(conn)
    dialect = conn.dialect
    # A MariaDB copy (verify --data) holds its snapshot backend's own tables too.
    names = [
        n
        for n in inspector.get_table_names()
        if n != "alembic_version" and not n.startswith("_branchmig_")
    ]
    tables: dict[str, Table] = {}
    if names:
        tables = _reflect(inspector, conn, names, reflected)
        if rows or content:
            counts = _row_counts(conn, names)
            tables = {
                name: _with_rows(conn, table, counts[name], content=content)
                for name, table in tables.items()
            }
    enums = {}
    if dialect.name == "postgresql":
        for enum in inspector.get_enums():
            name = enum["name"] if enum.get("visible", True) else f"{enum['schema']}.{enum['name']}"
            enums[name] = EnumType(name, tuple(enum["labels"]))
    return Schema(tables, enums)


# SQLite tables by what sqlite_master says of them (and of the tables they refer to).
Reflected = dict[tuple[tuple[str, str, str, str | None], ...], Table]


def _reflect(
    inspector: Any, conn: Any, names: list[str], reflected: Reflected | None
) -> dict[str, Table]:
    """The tables ``names``: reflected, or on SQLite taken from ``reflected`` when their
    SQL is as it was. There the SQL in sqlite_master says all the inspector reads of a
    table (columns, keys, CHECKs: parsed from it; its indexes: their own SQL), but for a
    foreign key naming no columns, which refers to the other table's primary key: a
    table's key holds the SQL of the tables its own SQL names."""
    dialect = conn.dialect
    if reflected is None or dialect.name != "sqlite":
        return _tables(inspector, dialect, names)
    from sqlalchemy import text

    rows = conn.execute(text("SELECT type, name, tbl_name, sql FROM sqlite_master")).all()
    entries: dict[str, list[tuple[str, str, str, str | None]]] = {}
    for kind, name, table, sql in rows:
        entries.setdefault(str(table), []).append((str(kind), str(name), str(table), sql))
    keys = {}
    for name in names:
        own = sorted(entries.get(name, []), key=repr)
        text_of = " ".join(str(e[3]) for e in own)
        named = [
            e
            for other in sorted(entries)
            if other != name and other in text_of
            for e in sorted(entries[other], key=repr)
        ]
        keys[name] = (*own, *named)
    missing = [n for n in names if keys[n] not in reflected]
    if missing:
        for name, table in _tables(inspector, dialect, missing).items():
            reflected[keys[name]] = table
    return {n: reflected[keys[n]] for n in names}


def _tables(inspector: Any, dialect: Any, names: list[str]) -> dict[str, Table]:
    columns = _by_table(inspector.get_multi_columns(filter_names=names))
    pks = _by_table(inspector.get_multi_pk_constraint(filter_names=names))
    indexes = _by_table(inspector.get_multi_indexes(filter_names=names))
    uniques = _by_table(inspector.get_multi_unique_constraints(filter_names=names))
    fks = _by_table(inspector.get_multi_foreign_keys(filter_names=names))
    checks = _by_table(inspector.get_multi_check_constraints(filter_names=names))
    comments = (
        _by_table(inspector.get_multi_table_comment(filter_names=names))
        if dialect.supports_comments
        else {}
    )
    tables = {}
    for name in names:
        tables[name] = Table.of(
            name,
            columns=[
                Column(
                    c["name"],
                    _type(c["type"], dialect),
                    bool(c["nullable"]),
                    None if c.get("default") is None else str(c["default"]),
                    c.get("comment"),
                )
                for c in columns.get(name, [])
            ],
            primary_key=(pks.get(name) or {}).get("constrained_columns") or (),
            indexes=[
                Index(i["name"], tuple(str(c) for c in i["column_names"]), bool(i["unique"]))
                for i in indexes.get(name, [])
            ],
            uniques=[
                Index(u["name"], tuple(u["column_names"]), True) for u in uniques.get(name, [])
            ],
            foreign_keys=[
                ForeignKey(
                    f["name"],
                    tuple(f["constrained_columns"]),
                    f["referred_table"],
                    tuple(f["referred_columns"]),
                )
                for f in fks.get(name, [])
            ],
            checks=[Check(c["name"], str(c["sqltext"])) for c in checks.get(name, [])],
            comment=(comments.get(name) or {}).get("text"),
        )
    return tables


def _row_counts(conn: Any, names: Sequence[str], *, chunk: int = 200) -> dict[str, int]:
    """How many rows each table holds, asked in one query for ``chunk`` tables (SQLite
    takes at most 500 terms of a UNION)."""
    from sqlalchemy import text

    quote = conn.dialect.identifier_preparer.quote
    counts: dict[str, int] = {}
    for start in range(0, len(names), chunk):
        part = names[start : start + chunk]
        query = " UNION ALL ".join(
            f"SELECT {i}, COUNT(*) FROM {quote(n)}"  # noqa: S608 - quoted names
            for i, n in enumerate(part)
        )
        for index, count in conn.execute(text(query)):
            counts[part[int(index)]] = int(count)
    return counts


def _with_rows(conn: Any, table: Table, count: int, *, content: bool) -> Table:
    """``table`` with its row count and (with ``content``) a checksum of its rows: each
    row's values by column name, the rows sorted, so neither the columns' order (a
    batch-mode downgrade recreates the table) nor the rows' changes it."""
    from dataclasses import replace

    if not content:
        return replace(table, rows=count)
    import hashlib

    from sqlalchemy import text

    quote = conn.dialect.identifier_preparer.quote
    names = sorted(table.columns)
    select = ", ".join(quote(n) for n in names) or "1"
    found = sorted(
        repr(tuple(row))
        for row in conn.execute(text(f"SELECT {select} FROM {quote(table.name)}"))  # noqa: S608
    )
    digest = hashlib.sha256("\n".join(found).encode()).hexdigest()[:16]
    return replace(table, rows=count, checksum=digest)


def _by_table(found: Mapping[tuple[str | None, str], Any]) -> dict[str, Any]:
    return {table: value for (_, table), value in found.items()}


def _type(sa_type: Any, dialect: Any) -> str:
    try:
        return str(sa_type.compile(dialect=dialect))
    except Exception:  # noqa: BLE001 - a type this dialect cannot render: its repr
        return repr(sa_type)


# -- URLs ------------------------------------------------------------------------------------


# How env.py is pointed at scratch databases, and what it must do for that to work: plain
# Alembic's by sqlalchemy.url, a Flask app's by its Flask-SQLAlchemy engines.
_POINTED = {
    False: "sqlalchemy.url branchmig set, so it cannot be pointed at a scratch database; "
    "make env.py use config.get_main_option('sqlalchemy.url') when it is set, then run: "
    "branchmig verify",
    True: "app's engines branchmig made on scratch databases, so it cannot be pointed at "
    "them; make env.py take its engines from Flask-SQLAlchemy's db.engines (as the env.py "
    "of flask db init does), then run: branchmig verify",
}


def _live_urls(env: Any) -> dict[str, str]:
    """The live databases by name: a Flask app's engines (read, not connected), else
    ``sqlalchemy.url``."""
    if env.flask_app is not None:
        from branchmig.runner import flask_engine_urls

        return flask_engine_urls(env)
    return {"": _configured_url(env)}


def _backends(urls: Iterable[str]) -> str:
    return "+".join(sorted({_backend(url) for url in urls}))


def _configured_url(env: Any) -> str:
    url = env.config.get_main_option("sqlalchemy.url")
    if not url:
        raise ConfigError(
            "The Alembic configuration sets no sqlalchemy.url, so branchmig cannot tell "
            "which database server to make a scratch database on; set sqlalchemy.url in "
            "alembic.ini (env.py must use it), then run: branchmig verify"
        )
    return str(url)


def _backend(url: str) -> str:
    backend = backend_of(url)
    if backend is None:
        raise ConfigError(
            f"branchmig verify supports sqlite, postgresql and mysql/mariadb "
            f"databases, not {dialect_named(url)!r} ({mask_url(url)})"
        )
    return backend
