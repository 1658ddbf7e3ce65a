"""Carry out a plan through Alembic's own machinery and the project's own env.py.

Each phase builds a ``RevisionMap`` that holds real ``Script`` objects only for the
revisions it runs and header-only ``Revision`` placeholders for the rest of the graph:
Alembic imports nothing else, which is what makes a switch on a long history fast. The
scripts are compiled from their text here (never from ``__pycache__``), so an edited or
materialised script cannot be shadowed by stale bytecode of the same size and second.

Alembic is loaded and env.py opened in ``alembicenv``, the Flask app in ``flaskapp``, the
database read in ``dbread``.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from branchmig.alembicenv import (
    EnvFailed,
    engine_name,
    from_the_database,
    run_env,
    script_directory,
)
from branchmig.commitcode import CodeAt, importable
from branchmig.databases import AlembicEnv, DatabaseState
from branchmig.errors import (
    BranchmigError,
    DatabaseError,
    Direction,
    NotAsRemembered,
    ScriptLoadError,
    StepFailed,
    first_line,
)
from branchmig.graph import Graph
from branchmig.urls import mask_url

__all__ = [
    "Phase",
    "load_script_module",
    "run_phases",
]


def load_script_module(
    path: Path, text: bytes, rev_id: str, shown: str | None = None
) -> types.ModuleType:
    """The module of one script, compiled from ``text``: bytecode is never trusted.
    ``shown``: how a failure names the script (its path in the repository, not the temp
    file an old script was written to)."""
    module = types.ModuleType(f"branchmig_rev_{abs(hash((rev_id, text))):x}")
    module.__file__ = str(path)
    try:
        code = compile(text, str(path), "exec", dont_inherit=True)
        exec(code, module.__dict__)  # noqa: S102 - this is how Alembic loads a script too
    except Exception as err:  # noqa: BLE001 - a broken script is the user's to fix
        raise ScriptLoadError(
            f"Cannot load {shown or path} (revision '{rev_id}'): {first_line(err)}",
            path=shown or str(path),
            revision=rev_id,
            cause=first_line(err),
        ) from err
    return module


@dataclass(frozen=True)
class Phase:
    """Revisions to run in one direction, with the graph Alembic sees for them (restricted
    to ``scope``) and the texts of their scripts (read when the phase starts, so the
    upgrade reads the tree after the checkout). ``code``: the commit whose scripts these
    are, when it is not the working tree's: the modules they import from the project
    are importable as they were there while the phase runs."""

    direction: Direction
    revisions: Sequence[str]
    graph: Graph
    scope: Set[str]
    texts: Callable[[], Mapping[str, tuple[Path, bytes]]]
    start_heads: Sequence[str] | None = None
    code: CodeAt | None = None


def run_phases(
    env: AlembicEnv,
    phases: Sequence[Phase],
    *,
    between: Callable[[], None] | None = None,
    on_step: Callable[[Direction, str], None] | None = None,
    on_start: Callable[[Direction, str], None] | None = None,
    on_database: Callable[[str], None] | None = None,
    expect: DatabaseState | None = None,
) -> None:
    """Run the phases in order in one run of env.py, calling ``between`` (the checkout)
    after the first, ``on_start`` before each step and ``on_step`` after it: one
    connection, and on a database with transactional DDL one
    transaction (unless env.py asks for one per migration), so a failing upgrade takes the
    revert back with it.

    A ``--multidb`` env.py runs the steps once per database, each in its own transaction,
    committed together at the end: ``on_database`` is called with each one's name,
    ``between`` only once (the downgrades of the later databases read the old scripts
    from their copies, not from the tree).

    ``expect``: the databases as branchmig remembers them, env.py not having been run to
    read them: before the first step, each connection env.py makes must be to one of
    them, at its revisions, else nothing runs (``DatabaseError``)."""
    if not any(phase.revisions for phase in phases):
        if between is not None:
            between()
        return
    script_dir = script_directory(env)
    run = _PhaseRun(
        phases, between=between, on_step=on_step, on_start=on_start, on_database=on_database
    )
    engines: list[Any] = []

    def fn(rev: Any, context: Any) -> Iterator[Any]:
        engines.append(context.connection.engine)
        if expect is not None:
            _check_expected(context, expect)
        return run.steps(context)

    try:
        run_env(env, script_dir, fn)
    except BranchmigError:
        raise  # ours (the checkout, a script that does not load): already one line
    except (Exception, SystemExit) as err:  # noqa: BLE001 - the migration's own error is the message
        if not engines and not from_the_database(err):
            raise EnvFailed.of(env.project, err) from err  # before the first step
        raise run.failed(err) from err
    finally:
        run.code.close()
        for engine in engines:
            engine.dispose()
        env.dispose_engines()


class _PhaseRun:
    """One run of ``run_phases``: the step running, the steps completed, each phase's
    map and scripts once prepared, and the code of the phase running, entered when its
    scripts load and left before the checkout and at the end (the steps run between the
    generator's yields). Env.py iterates ``steps`` once per database it migrates."""

    def __init__(
        self,
        phases: Sequence[Phase],
        *,
        between: Callable[[], None] | None,
        on_step: Callable[[Direction, str], None] | None,
        on_start: Callable[[Direction, str], None] | None,
        on_database: Callable[[str], None] | None,
    ) -> None:
        self.phases = phases
        self.between = between
        self.on_step = on_step
        self.on_start = on_start
        self.on_database = on_database
        self.completed: list[str] = []
        self.current: tuple[Direction, str] | None = None
        self.prepared: dict[int, tuple[Any, dict[str, Any]]] = {}
        self.crossed = False
        self.code = contextlib.ExitStack()
        self.entered: list[CodeAt | None] = []  # the code entered, while it is

    def steps(self, context: Any) -> Iterator[Any]:
        if self.on_database is not None:
            self.on_database(engine_name(context))
        for index, phase in enumerate(self.phases):
            if index and self.between is not None and not self.crossed:
                self._finish_current()
                self._leave_code()
                self.between()
                self.crossed = True
            if phase.revisions:
                yield from self._phase_steps(index, phase)
        self._finish_current()
        self._leave_code()

    def _phase_steps(self, index: int, phase: Phase) -> Iterator[Any]:
        from alembic.runtime.migration import MigrationStep

        self._finish_current()
        if self.entered != [phase.code]:  # phases of one commit share its code
            self.code.close()
            self.code.enter_context(importable(phase.code))
            self.entered[:] = [phase.code]
        if index not in self.prepared:
            self.prepared[index] = _prepare(phase)
        revision_map, scripts = self.prepared[index]
        make = (
            MigrationStep.upgrade_from_script
            if phase.direction == "upgrade"
            else MigrationStep.downgrade_from_script
        )
        for rev_id in phase.revisions:
            self._finish_current()
            self.current = (phase.direction, rev_id)
            if self.on_start:
                self.on_start(phase.direction, rev_id)
            yield make(revision_map, scripts[rev_id])

    def _finish_current(self) -> None:
        if self.current is not None:
            direction, rev_id = self.current
            self.completed.append(rev_id)
            if self.on_step:
                self.on_step(direction, rev_id)
            self.current = None

    def _leave_code(self) -> None:
        self.code.close()
        self.entered.clear()

    def failed(self, err: BaseException) -> StepFailed:
        """The step that raised ``err`` (none yet: "", a downgrade), and what completed."""
        direction, revision = self.current or ("downgrade", "")
        return StepFailed(
            revision=revision,
            direction=direction,
            completed=tuple(self.completed),
            cause=first_line(err),
        )


def _check_expected(context: Any, expect: DatabaseState) -> None:
    """The database env.py connected to is one ``expect`` names, at its revisions."""
    url = context.connection.engine.url.render_as_string(hide_password=False)
    known = {db.url: db for db in expect.databases}
    if url not in known:
        raise NotAsRemembered(
            f"env.py now connects to {mask_url(url)}, not to {mask_url(expect.url)} as when "
            "branchmig last ran it"
        )
    heads = tuple(context.get_current_heads())
    if sorted(heads) != sorted(known[url].heads):
        raise NotAsRemembered(
            f"{mask_url(url)} is at {', '.join(heads) or 'base'}, not at "
            f"{', '.join(known[url].heads) or 'base'} as branchmig left it"
        )


def _prepare(phase: Phase) -> tuple[Any, dict[str, Any]]:
    """The ``RevisionMap`` for a phase and the ``Script`` of each revision it runs.

    When the database is at ``start_heads`` and the phase is a straight line (one head
    throughout, no merges or dependencies), Alembic needs no ancestry to keep
    ``alembic_version`` right, so the map holds only the steps and their parents: on a
    long history that is most of a switch's time saved."""
    from alembic.script.base import Script
    from alembic.script.revision import Revision as AlembicRevision
    from alembic.script.revision import RevisionMap

    graph, scope, revisions = phase.graph, phase.scope, phase.revisions
    if phase.start_heads is not None and _is_straight(
        phase.direction, revisions, graph, phase.start_heads
    ):
        parents = {p for r in revisions for p in graph.revisions[r].down}
        scope = set(revisions) | parents
        graph = _truncated(graph, parents - set(revisions))
    texts = phase.texts()
    scripts: dict[str, Any] = {}
    for rev_id in revisions:
        path, text = texts[rev_id]
        shown = graph.revisions[rev_id].path if rev_id in graph.revisions else None
        module = load_script_module(path, text, rev_id, shown)
        scripts[rev_id] = Script(module, rev_id, str(path))

    def generate() -> Iterator[Any]:
        for rev_id in scope:
            if rev_id in scripts:
                yield scripts[rev_id]
                continue
            rev = graph.revisions[rev_id]
            yield AlembicRevision(
                rev.id,
                rev.down or None,
                branch_labels=rev.labels or None,
                dependencies=rev.depends_on or None,
            )

    revision_map = RevisionMap(generate)
    try:
        revision_map.heads  # noqa: B018 - builds the map: resolves dependencies
    except Exception as err:  # noqa: BLE001 - alembic's RevisionError family
        raise DatabaseError(f"Alembic rejects the revision graph: {first_line(err)}") from err
    return revision_map, scripts


def _is_straight(
    direction: Direction, revisions: Sequence[str], graph: Graph, start_heads: Sequence[str]
) -> bool:
    heads = set(start_heads)
    for rev_id in revisions:
        rev = graph.revisions[rev_id]
        if len(rev.down) > 1 or rev.depends_on:
            return False
        if direction == "downgrade":
            if heads != {rev_id}:
                return False
            heads = set(rev.down)
        else:
            if heads != set(rev.down):
                return False
            heads = {rev_id}
    return True


def _truncated(graph: Graph, boundary: set[str]) -> Graph:
    """``graph`` with the ``boundary`` revisions cut from their parents (bases)."""

    revisions = dict(graph.revisions)
    for rev_id in boundary:
        revisions[rev_id] = replace(revisions[rev_id], down=(), depends_on=(), labels=())
    return Graph(revisions, graph.problems)
