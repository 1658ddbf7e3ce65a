"""``verify``, ``verify --drift`` and ``verify --models``: each composes the scratch
databases, the runner and the schema reading, and returns its result as a value."""

from __future__ import annotations

from typing import TYPE_CHECKING

from branchmig.alembicenv import alembic_env, start_loading_alembic
from branchmig.analysis import too_many_heads
from branchmig.dbread import compare_models, read_database
from branchmig.errors import ConfigError, DatabaseError, GraphError, UsageError
from branchmig.graph import Graph
from branchmig.move.applied import applied_source
from branchmig.plan import make_plan
from branchmig.process import Progress
from branchmig.schema import compare_each
from branchmig.session import database_id
from branchmig.state import State
from branchmig.urls import mask_url, read_only_url, sqlite_path
from branchmig.verify.reading import inspect_schema
from branchmig.verify.results import (
    DriftResult,
    Finding,
    ModelsResult,
    RevisionCheck,
    VerifyResult,
    describe_model_diff,
    quiet,
)
from branchmig.verify.rounds import Runner, Texts, check_each
from branchmig.verify.scratch import scratch_databases
from branchmig.verify.targets import backends_of, live_urls, supported_backend
from branchmig.workspace import WORKTREE, Workspace, describe_ref

if TYPE_CHECKING:
    from branchmig.databases import DatabaseState


def verify(
    ws: Workspace,
    *,
    ref: str = WORKTREE,
    against: str | None = None,
    data: bool = False,
    progress: Progress = quiet,
) -> VerifyResult:
    """Run each revision ``ref`` adds to ``against`` (default: ``default_base``) up, down
    and up again on a scratch database, and report what fails or is left behind: schema,
    and how many rows each table holds. With ``data`` the scratch database starts as a
    copy of the live one (brought to the revisions ``ref`` shares with ``against``), and
    each table's rows are compared too."""
    start_loading_alembic()
    base = against if against is not None else default_base(ws)
    _, ours = ws.graph_at(ref)
    if len(ours.heads) > ws.project.settings.expected_heads:
        raise GraphError(too_many_heads(ours, ref))  # as check says: nothing is run
    _, theirs = ws.graph_at(base)
    plan = make_plan(applied_heads=theirs.heads, source=theirs, target=ours)
    shared = ours.ancestors(plan.common)
    texts = Texts(ws, ours, ref)
    with alembic_env(ws.project) as env:
        lives = live_urls(env)
        backend = backends_of(lives.values())
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
            runner = Runner(env, ours, texts, scratches)
            runner.data = data
            with runner.pointed_at_scratch():
                runner.bring_to(shared, shared_with=base)
                check_each(runner, plan.upgrade, checks, findings, progress)
    return VerifyResult(ref, base, backend, plan.common, tuple(checks), tuple(findings))


def drift(ws: Workspace, *, progress: Progress = quiet) -> DriftResult:
    """Compare the live database's schema with a scratch database upgraded from empty to
    the same heads (with the working tree's scripts where it has them)."""
    start_loading_alembic()
    _, tree = ws.graph_at(WORKTREE)
    with alembic_env(ws.project) as env:
        for configured in live_urls(env).values():
            if supported_backend(configured) == "sqlite" and not sqlite_path(configured).is_file():
                raise DatabaseError(
                    f"There is no database at {mask_url(configured)} to compare; "
                    "run: branchmig sync"
                )
        live = read_database(env)
        lives = dict(live.urls)
        backend = backends_of(lives.values())
        graph, ref = _graph_holding(ws, tree, live)
        revisions = graph.topological(graph.ancestors(live.heads))
        progress(
            f"branchmig: building a scratch {backend} database to "
            f"{', '.join(live.heads) or 'base'} ({len(revisions)} revision"
            f"{'s' if len(revisions) != 1 else ''})"
        )
        with scratch_databases(lives, progress=progress) as scratches:
            runner = Runner(env, graph, Texts(ws, graph, ref), scratches)
            with runner.pointed_at_scratch():
                runner.upgrade(revisions, shared_with=None)
                expected = runner.schema()
        actual = {name: inspect_schema(read_only_url(lives[name])) for name in expected}
    return DriftResult(mask_url(live.url), backend, live.heads, compare_each(expected, actual))


def models(ws: Workspace, *, progress: Progress = quiet) -> ModelsResult:
    """Compare the models (env.py's ``target_metadata``) with a scratch database built
    from empty to the working tree's heads, as ``alembic check`` compares them with the
    live one: a model change that no migration makes is named."""
    start_loading_alembic()
    _, tree = ws.graph_at(WORKTREE)
    revisions = tree.topological(tree.ancestors(tree.heads))
    with alembic_env(ws.project) as env:
        lives = live_urls(env)
        with scratch_databases(lives, progress=progress) as scratches:
            runner = Runner(env, tree, Texts(ws, tree, WORKTREE), scratches)
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


def _graph_holding(ws: Workspace, tree: Graph, live: DatabaseState) -> tuple[Graph, str]:
    """The working tree's graph when it has the live heads, else the scripts that applied
    them (branchmig's copies, the refs): drift is measured against the code first."""
    heads = live.heads
    if all(h in tree for h in heads):
        return tree, WORKTREE

    dbid = database_id(ws, live)
    return applied_source(
        ws, State(ws.state_dir), heads, dbid.key, previous=None, target=tree
    ), "applied"
