"""``graph``'s answer: the revision graphs of refs together, each ref's heads marked and
the database's position, read through env.py as ``status`` reads it. Apart from the
analyzer, so that ``heads`` (a shell prompt's question) does not load the edges to
Alembic and the database."""

from __future__ import annotations

from dataclasses import replace

from branchmig import graphview
from branchmig.alembicenv import alembic_env, start_loading_alembic
from branchmig.dbread import read_database
from branchmig.errors import BranchmigError
from branchmig.graph import merge_graphs
from branchmig.graphview import GraphView
from branchmig.workspace import WORKTREE, Workspace


def graph_view(
    ws: Workspace, refs: list[str], *, database: bool = True, fold: bool = True
) -> GraphView:
    """The revision graph of ``refs`` together, each ref's heads marked and (unless
    ``database`` is False) the database's position; the scripts' warnings with the view's.
    A database that cannot be read is drawn without its mark, and a warning says why."""
    if database:
        start_loading_alembic()  # imported on a thread while git is read
    read = [ws.graph_at(ref) for ref in refs]
    warnings = [w for scripts, _ in read for w in scripts.warnings]
    shown = [
        ("working tree" if ref == WORKTREE else ref, found.heads)
        for ref, (_, found) in zip(refs, read, strict=True)
    ]
    position = None
    if database:
        position = _database_heads(ws, warnings)
    view = graphview.build_view(
        merge_graphs(*(found for _, found in read)),
        heads=shown,
        database=position,
        fold_after=graphview.FOLD_AFTER if fold else None,
    )
    return replace(view, warnings=tuple(dict.fromkeys(warnings + list(view.warnings))))


def _database_heads(ws: Workspace, warnings: list[str]) -> tuple[str, ...] | None:
    """The database's heads as ``status`` reads them; None, with a warning, when it
    cannot be read."""
    try:
        with alembic_env(ws.project) as env:
            return read_database(env).heads
    except BranchmigError as err:
        warnings.append(
            f"the database's position is not marked: {err}. To draw without "
            "reading it: branchmig graph --no-db"
        )
        return None
