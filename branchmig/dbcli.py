"""The commands that open the database: ``switch``, ``sync``, ``status``,
``merge-heads``, ``snapshot``, ``verify``, ``graph`` and ``demo``. ``cli.main`` loads
this module (and with it the move's machinery, ~30 ms) only when one of them runs, so
that ``heads``, ``plan`` and ``check`` answer without it."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from branchmig import graphview
from branchmig import verify as verify_core
from branchmig.conventions import (
    Group,
    as_ref,
    json_option,
    markdown_format,
    move_options,
    open_workspace,
    progress,
    show,
    terminate_option,
    warn,
)
from branchmig.demo import run_demo
from branchmig.graphing import graph_view
from branchmig.merge import merge_heads as run_merge
from branchmig.move.commands import switch as run_switch
from branchmig.move.commands import sync as run_sync
from branchmig.move.request import RestoreRequest
from branchmig.move.restore import restore
from branchmig.reports import move as move_reports
from branchmig.reports import snapshots as snapshot_reports
from branchmig.reports import status as status_reports
from branchmig.reports import verify as verify_reports
from branchmig.snapshotting import (
    drop_snapshot,
    list_snapshots,
    prune_snapshots,
    save_snapshot,
)
from branchmig.status import status as get_status


def _move(run: Callable[..., Any], ctx: click.Context, *, what: str, **options: Any) -> None:
    """Run a switch or a sync with the options ``move_options`` parsed; show its result."""
    as_json = options.pop("as_json")
    terminate = options.pop("terminate_connections")
    result = run(open_workspace(ctx), terminate_connections=terminate, progress=progress, **options)
    out, notes = move_reports.move_text(result, what=what)
    show(move_reports.move_json(result), out, notes=notes, as_json=as_json)


@click.command()
@click.argument("branch")
@move_options
@click.pass_context
def switch(ctx: click.Context, /, branch: str, **options: Any) -> None:
    """Check out BRANCH and bring the database along: revert what BRANCH lacks with the
    current scripts, check out, apply BRANCH's heads. All or nothing with snapshots."""
    _move(run_switch, ctx, what=f"switch to '{branch}'", branch=branch, **options)


@click.command()
@move_options
@click.pass_context
def sync(ctx: click.Context, /, **options: Any) -> None:
    """Bring the database to the working tree's heads (after git reset --hard, a pull
    without hooks, or a failed hook)."""
    _move(run_sync, ctx, what="sync to the working tree", **options)


@click.command()
@json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Code heads, database heads, pending revisions, revisions the database has that
    this branch lacks (and the refs that have them), and this database's snapshots."""
    st = get_status(open_workspace(ctx), progress=progress)
    show(status_reports.status_json(st), status_reports.status_text(st), as_json=as_json)
    ctx.exit(1 if st.failed else 0)


@click.command("merge-heads")
@click.option(
    "-m",
    "--message",
    default=None,
    help="Message of the merge revision (default names the merged branches).",
)
@click.option(
    "--rebase",
    is_flag=True,
    help="Re-point this branch's first migration onto the other head instead of "
    "writing a merge revision (two heads only).",
)
@click.option("--no-upgrade", is_flag=True, help="Write the revision; leave the database.")
@click.option("--dry-run", is_flag=True, help="Say what would be written; write nothing.")
@click.argument("heads", nargs=-1)
@json_option
@click.pass_context
def merge_heads(
    ctx: click.Context,
    message: str | None,
    rebase: bool,
    no_upgrade: bool,
    dry_run: bool,
    heads: tuple[str, ...],
    as_json: bool,
) -> None:
    """Close a merge that left several heads: one merge revision written by Alembic (or,
    with --rebase, a linear history), then upgrade the database to it. HEADS limits it to
    those heads (heads under separate branch labels are left alone unless named)."""
    outcome = run_merge(
        open_workspace(ctx),
        message=message,
        rebase=rebase,
        upgrade=not no_upgrade,
        dry_run=dry_run,
        heads=heads,
        progress=progress,
    )
    out, notes = move_reports.merge_text(outcome)
    show(move_reports.merge_json(outcome), out, notes=notes, as_json=as_json)


@click.group(cls=Group)
def snapshot() -> None:
    """Snapshots of the project's database: list, save, restore, drop, prune."""


@snapshot.command("list")
@json_option
@click.pass_context
def snapshot_list(ctx: click.Context, as_json: bool) -> None:
    """Branch, heads, commit, size, age and backend of each snapshot of the database."""
    infos = list_snapshots(open_workspace(ctx), progress=progress)
    data = {"snapshots": [snapshot_reports.snapshot_json(i) for i in infos]}
    show(data, snapshot_reports.list_text(infos, now=time.time()), as_json=as_json)


@snapshot.command("save")
@click.argument("name", required=False)
@terminate_option
@click.pass_context
def snapshot_save(ctx: click.Context, name: str | None, terminate_connections: bool) -> None:
    """Save the database now as NAME (default: this branch's snapshot)."""
    record = save_snapshot(
        open_workspace(ctx), name=name, terminate=terminate_connections, progress=progress
    )
    click.echo(snapshot_reports.saved_text(record))


@snapshot.command("restore")
@click.argument("name")
@click.option(
    "--keep/--consume",
    default=None,
    help="Keep the snapshot after restoring it, to return to it again (default for one "
    "saved by name), or use it up (default for a branch's).",
)
@terminate_option
@json_option
@click.pass_context
def snapshot_restore(
    ctx: click.Context, name: str, keep: bool | None, terminate_connections: bool, as_json: bool
) -> None:
    """Put snapshot NAME (a key or a branch) back as the database. What it replaces is
    saved first, as a snapshot of its own. A snapshot saved by name (snapshot save NAME)
    is kept, a save point to return to again; a branch's is used up (the branch saves a
    new one when it is left)."""
    req = RestoreRequest(name, keep=keep, terminate=terminate_connections)
    result = restore(open_workspace(ctx), req, progress=progress)
    out, notes = move_reports.restore_text(result)
    show(move_reports.restore_json(result), out, notes=notes, as_json=as_json)


@snapshot.command("drop")
@click.argument("name")
@click.pass_context
def snapshot_drop(ctx: click.Context, name: str) -> None:
    """Delete snapshot NAME."""
    record = drop_snapshot(open_workspace(ctx), name=name, progress=progress)
    click.echo(f"Dropped snapshot '{record.key}'.")


@snapshot.command("prune")
@click.option(
    "--keep",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Drop all but the N newest snapshots (restorable ones spared).",
)
@click.option(
    "--older-than",
    type=click.FloatRange(min=0),
    default=None,
    metavar="DAYS",
    help="Drop the snapshots older than DAYS (restorable ones spared).",
)
@click.option(
    "--include-restorable",
    is_flag=True,
    help="With --keep or --older-than: drop the ones they select even when a checkout "
    "would restore them (their rows are nowhere else).",
)
@click.option("--strays", is_flag=True, hidden=True)  # what plain prune now drops
@click.option("--dry-run", is_flag=True, help="Say what would be dropped and kept, and why.")
@json_option
@click.pass_context
def snapshot_prune(
    ctx: click.Context,
    keep: int | None,
    older_than: float | None,
    include_restorable: bool,
    strays: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Drop snapshots no checkout would restore. Without options: the strays (their
    branch deleted or its scripts changed, and no other branch restores them), except
    those saved by name. With --keep N / --older-than DAYS: the ones those select, named
    saves included. A snapshot a checkout would restore (status: "restored by checking
    out ...") is never dropped unless --include-restorable is given. Index entries whose
    copy is gone are always removed."""
    result = prune_snapshots(
        open_workspace(ctx),
        keep=keep,
        older_than=older_than,
        include_restorable=include_restorable,
        dry_run=dry_run,
        progress=progress,
    )
    data = snapshot_reports.prune_json(result, dry_run=dry_run)
    show(data, snapshot_reports.prune_text(result, dry_run=dry_run), as_json=as_json)


@click.command()
@click.argument("ref", required=False, default=".")
@click.option(
    "--against",
    metavar="BASE",
    default=None,
    help="The ref whose revisions are taken as proven (default: the branch's "
    "upstream, else origin's default branch, else main or master).",
)
@click.option(
    "--drift",
    is_flag=True,
    help="Instead: compare the live database with a scratch one upgraded from "
    "empty to the same heads.",
)
@click.option(
    "--models",
    is_flag=True,
    help="Instead: compare the models (env.py's target_metadata) with a scratch "
    "database upgraded to the working tree's heads, as alembic check does.",
)
@click.option(
    "--data",
    is_flag=True,
    help="Start from a copy of the live database instead of an empty one, and compare "
    "each table's rows before the upgrade and after the downgrade too.",
)
@markdown_format
@json_option
@click.pass_context
def verify(
    ctx: click.Context,
    ref: str,
    against: str | None,
    drift: bool,
    models: bool,
    data: bool,
    fmt: str,
    as_json: bool,
) -> None:
    """Prove REF's own migrations (default: the working tree) on a scratch database of
    the project's backend: each revision REF adds to BASE is upgraded, downgraded and
    upgraded again, and its downgrade must leave the schema as before its upgrade. Exit 1
    on any finding. The live database and the checkout are not touched."""
    if models:
        if ref != "." or against is not None or data or drift:
            raise click.UsageError(
                "--models compares the working tree's models and migrations; it takes no "
                "REF, --against, --data or --drift"
            )
        compared = verify_core.models(open_workspace(ctx), progress=progress)
        report = verify_reports.models_report(compared)
        show(verify_reports.models_json(compared), [report], as_json=as_json)
        ctx.exit(0 if compared.ok else 1)
    if drift:
        if ref != "." or against is not None or data:
            raise click.UsageError(
                "--drift compares the live database; it takes no REF, --against or --data"
            )
        found = verify_core.drift(open_workspace(ctx), progress=progress)
        report = verify_reports.drift_report(found, markdown=fmt == "markdown")
        show(verify_reports.drift_json(found), [report], as_json=as_json)
        ctx.exit(0 if found.ok else 1)
    result = verify_core.verify(
        open_workspace(ctx), ref=as_ref(ref), against=against, data=data, progress=progress
    )
    report = verify_reports.verify_report(result, ref=ref, markdown=fmt == "markdown")
    show(verify_reports.verify_json(result, ref=ref), [report], as_json=as_json)
    ctx.exit(0 if result.ok else 1)


@click.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Build the demo here instead of a temporary folder.",
)
@click.option("--keep", is_flag=True, help="Keep the temporary folder afterwards.")
def demo(folder: Path | None, keep: bool) -> None:
    """Build a throwaway git repo with an Alembic app on SQLite and two feature branches,
    then switch between them, narrating each step. Needs nothing set up."""
    result = run_demo(folder=folder, keep=keep, say=click.echo)
    if keep or folder is not None:
        click.echo(f"\nThe demo project is in {result.folder}")
    if not result.email_kept:
        raise click.exceptions.Exit(1)


@click.command()
@click.argument("refs", nargs=-1, metavar="[REF]...")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "mermaid", "dot"]),
    default="text",
    help="text for a terminal, mermaid for a pull-request comment, dot for Graphviz.",
)
@click.option(
    "--no-db", is_flag=True, help="Do not read the database (no env.py runs); mark no position."
)
@click.option("--no-fold", is_flag=True, help="Draw every revision; fold no linear run.")
@click.pass_context
def graph(ctx: click.Context, refs: tuple[str, ...], fmt: str, no_db: bool, no_fold: bool) -> None:
    """The revision graph of the REFs together (default: the working tree, '.'), each
    ref's heads and the database's position marked. Long linear runs fold into one node."""

    ws = open_workspace(ctx)
    view = graph_view(
        ws,
        list(dict.fromkeys(as_ref(name) for name in refs or (".",))),
        database=not no_db,
        fold=not no_fold,
    )
    warn(list(view.warnings))
    color = fmt == "text" and not os.environ.get("NO_COLOR") and sys.stdout.isatty()
    click.echo(graphview.render(view, fmt, color=color), color=color)


# By the names ``cli.main`` lists them under.
COMMANDS: dict[str, click.Command] = {
    "switch": switch,
    "sync": sync,
    "status": status,
    "merge-heads": merge_heads,
    "snapshot": snapshot,
    "verify": verify,
    "graph": graph,
    "demo": demo,
}
