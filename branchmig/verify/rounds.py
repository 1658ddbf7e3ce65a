"""Running a branch's revisions on scratch databases through the project's env.py: the
scripts' texts at a ref, the runner that knows what each scratch database holds, and
each revision's round trip (up, down, up again) with the schema read around it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from branchmig.commitcode import CodeAt, code_for
from branchmig.dbread import read_database
from branchmig.downgrades import fix_for_failure
from branchmig.errors import (
    BranchmigError,
    ConfigError,
    DatabaseError,
    Direction,
    PlanError,
    StepFailed,
    first_line,
)
from branchmig.flaskapp import flask_engines_at
from branchmig.graph import Graph, Revision
from branchmig.plan import latest_common
from branchmig.process import Progress
from branchmig.runner import Phase, run_phases
from branchmig.schema import Schema, compare_each
from branchmig.scripts import read_text_anywhere
from branchmig.state import State
from branchmig.urls import mask_url, same_database
from branchmig.verify.reading import Reflected, inspect_connection, inspect_schema
from branchmig.verify.results import Finding, FindingKind, Outcome, RevisionCheck, trace_message
from branchmig.verify.scratch import Scratch
from branchmig.verify.targets import POINTED, backends_of
from branchmig.workspace import WORKTREE, Workspace, describe_ref

_ROUND_TRIP: tuple[Direction, ...] = ("upgrade", "downgrade", "upgrade")


def check_each(
    runner: Runner,
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
class Trip:
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


class Texts:
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

        text = State(self.ws.state_dir).kept_script(rev.blob) or read_text_anywhere(
            self.ws.repo, rev
        )
        if text is None:
            raise PlanError(
                f"The script of '{rev.id}' ({rev.path}, blob {rev.blob[:12]}) is "
                "not in git; commit it, or run: branchmig verify ."
            )
        return text


class Runner:
    """Steps through the project's env.py on the scratch database, knowing which
    revisions it holds."""

    def __init__(
        self, env: Any, graph: Graph, texts: Texts, scratches: Mapping[str, Scratch]
    ) -> None:
        self.env, self.graph, self.texts = env, graph, texts
        self.scratches = dict(scratches)  # by database name ("" the default, else a bind)
        self.reached: dict[str, Scratch] = {}  # the ones env.py migrates
        self.backend = backends_of(s.url for s in self.scratches.values())
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
                        f"{POINTED[self.env.flask_app is not None]}"
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

    def step(self, direction: Direction, rev_id: str) -> None:
        self._run(direction, (rev_id,))

    def _run(self, direction: Direction, revisions: Sequence[str]) -> None:
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
    ) -> list[Trip]:
        """Each revision run up, down and up again, from the first of ``revisions`` on,
        until one fails or leaves traces (the next then needs a rebuilt database). A
        project with one database runs them all in one run of env.py: one connection
        (and, where DDL is transactional, one transaction), the schema read through it
        between the steps. With several databases env.py runs the steps of each database
        in turn, so each step is a run of its own and the revision's schemas are read
        together."""
        if len(self.reached) != 1:
            return [self._trip_by_steps(revisions[0], before, progress)]

        trips: list[Trip] = []
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

    def _trip_by_steps(self, rev_id: str, before: dict[str, Schema], progress: Progress) -> Trip:
        trip = self._new_trip(rev_id, progress)
        try:
            for direction in _ROUND_TRIP:
                self.step(direction, rev_id)
                self._stepped(trip, before, self.schema)
        except StepFailed as err:
            self._failed(trip, err)
        return trip

    def _new_trip(self, rev_id: str, progress: Progress) -> Trip:
        progress(f"  {rev_id}: upgrade, downgrade, upgrade again")
        return Trip(RevisionCheck(rev_id, self.graph.revisions[rev_id].path), [])

    def _stepped(
        self, trip: Trip, before: dict[str, Schema], schema: Callable[[], dict[str, Schema]]
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
                    Finding(rev.id, rev.path, "trace", trace_message(rev, left), left)
                )
            trip.check = _with(trip.check, downgrade="left traces" if left else "ok")
        else:
            trip.check = _with(trip.check, upgrade_again="ok")
            trip.after = None if trip.findings else schema()

    def _failed(self, trip: Trip, err: Exception) -> None:
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
