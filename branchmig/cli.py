"""The ``branchmig`` command: parse, call one core function, render. No logic here.

Heavy modules (SQLAlchemy, Alembic) are imported inside the commands that
need them, so ``heads``, ``plan`` and ``check`` stay fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from branchmig import reports
from branchmig.errors import BranchmigError
from branchmig.workspace import WORKTREE, Workspace

F = TypeVar("F", bound=Callable[..., Any])


class _Group(click.Group):
    """Turns every BranchmigError into one line on stderr and its exit code: the only
    place errors are translated. Every command added takes the conventions' options
    after its name too (``branchmig status -q`` is ``branchmig -q status``)."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        cmd.params.extend(_conventions())
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BranchmigError as err:
            click.echo(f"branchmig: {err}", err=True)
            if "--json" in sys.argv[1:]:  # a machine reads stdout: the error is JSON too
                _emit_json(
                    {
                        "error": str(err),
                        "exit_code": err.exit_code,
                        "kind": type(err).__name__,
                        **err.facts(),
                    }
                )
            ctx.exit(err.exit_code)


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Keep an option in the context object that the group and its commands share, given
    before the command or after it; return what was given in either place."""
    obj = ctx.ensure_object(dict)
    name = param.name or ""
    if name == "config":
        obj[name] = (*obj.get(name, ()), *value)
    else:
        obj[name] = bool(obj.get(name) or value)
    prints_json = isinstance(ctx.command, click.Group) or any(
        p.name == "as_json" for p in ctx.command.params
    )
    if obj.get("as_json") and not prints_json:
        raise click.UsageError(f"{ctx.command_path} prints no JSON; leave out --json", ctx)
    return obj[name]


def _conventions(*, json: bool = False) -> list[click.Option]:
    """-c, -v and -q (and, on the group, --json) as every command takes them."""
    options = [
        click.Option(
            ["-c", "--config"],
            type=click.Path(path_type=Path),
            multiple=True,
            expose_value=False,
            callback=_remember,
            help="The alembic.ini or pyproject.toml to use, as for alembic; give both "
            "with two -c (default: found from the repository).",
        ),
        click.Option(
            ["-v", "--verbose"],
            is_flag=True,
            expose_value=False,
            callback=_remember,
            help="Show Alembic's own log lines too (Running upgrade ...).",
        ),
        click.Option(
            ["-q", "--quiet"],
            is_flag=True,
            expose_value=False,
            callback=_remember,
            help="No progress lines on stderr: only results, warnings and errors.",
        ),
    ]
    if json:
        options.append(
            click.Option(
                ["--json", "as_json"],
                is_flag=True,
                expose_value=False,
                callback=_remember,
                help="One JSON object on stdout, for the commands that print one.",
            )
        )
    return options


_json_option = click.option(
    "--json", "as_json", is_flag=True, callback=_remember, help="One JSON object on stdout."
)


def _open(ctx: click.Context) -> Workspace:
    obj = ctx.find_object(dict) or {}
    config = obj.get("config", ())
    chosen = config[0] if len(config) == 1 else (list(config) or None)
    ws = Workspace.open(Path.cwd(), config=chosen)
    ctx.call_on_close(ws.close)
    if obj.get("verbose"):
        ws.show_alembic_log()
    return ws


def _emit_json(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def _warn(lines: tuple[str, ...] | list[str]) -> None:
    for line in lines:
        click.echo(f"warning: {line}", err=True)


def _ref(value: str) -> str:
    return WORKTREE if value in (".", "WORKTREE") else value


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    params=_conventions(json=True),
)
@click.version_option(package_name="branchmig", prog_name="branchmig")
def main() -> None:
    """Git-aware Alembic migrations: the database follows every checkout, losing no data."""


@main.command()
@click.argument("ref", required=False, default=".")
@_json_option
@click.pass_context
def heads(ctx: click.Context, ref: str, as_json: bool) -> None:
    """The head revisions of the graph at REF (default: the working tree, '.')."""
    from branchmig.analysis import heads as heads_of
    from branchmig.analysis import heads_output

    out, err = heads_output(heads_of(_open(ctx), ref=_ref(ref)), as_json=as_json)
    click.echo(err, err=True, nl=False)
    click.echo(out, nl=False)


_markdown_format = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown"]),
    default="text",
    help="markdown: a report to post as a pull-request comment.",
)


@main.command()
@click.argument("source", metavar="FROM")
@click.argument("target", metavar="TO")
@_markdown_format
@_json_option
@click.pass_context
def plan(ctx: click.Context, source: str, target: str, fmt: str, as_json: bool) -> None:
    """What moving a database from FROM's heads to TO's heads does (refs; '.' is the
    working tree). Touches no database."""
    from branchmig.analysis import plan_between

    result = plan_between(_open(ctx), source=_ref(source), target=_ref(target))
    _warn(result.warnings)
    p = result.plan
    if as_json:
        _emit_json(
            {
                "from": result.source,
                "to": result.target,
                "common": list(p.common),
                "downgrade": list(p.downgrade),
                "upgrade": list(p.upgrade),
                "changed": list(p.changed),
                "destructive": [
                    {
                        "revision": d.revision,
                        "operation": d.operation,
                        "target": d.target,
                        "line": d.line,
                        "direction": d.direction,
                    }
                    for d in p.destructive
                ],
                "batch_needed": [
                    {
                        "revision": d.revision,
                        "operation": d.operation,
                        "target": d.target,
                        "line": d.line,
                        "reason": getattr(d, "reason", ""),
                    }
                    for d in p.batch_needed
                ],
                "warnings": list(result.warnings),
            }
        )
        return
    if fmt == "markdown":
        click.echo(
            reports.plan_markdown(
                p, source=result.source, target=result.target, warnings=result.warnings
            )
        )
        return
    click.echo(render_plan(p, source=result.source, target=result.target))


def render_plan(p: Any, *, source: str, target: str) -> str:
    lines = [f"From {source} to {target}:"]
    lines.append(f"  common:    {', '.join(p.common) or '(base)'}")
    if p.is_noop:
        lines.append("  nothing to do")
        return "\n".join(lines)
    lines.append(f"  downgrade: {' -> '.join(p.downgrade) or '-'}")
    lines.append(f"  upgrade:   {' -> '.join(p.upgrade) or '-'}")
    if p.changed:
        lines.append(f"  changed scripts (redone): {', '.join(p.changed)}")
    for d in p.destructive:
        lines.append(f"  loses data: {d.describe()}")
    return "\n".join(lines)


@main.command()
@click.option(
    "--against",
    metavar="REF",
    default=None,
    help="Also fail when merging REF would leave several heads.",
)
@_markdown_format
@_json_option
@click.pass_context
def check(ctx: click.Context, against: str | None, fmt: str, as_json: bool) -> None:
    """Exit 1 when the working tree has more heads than expected (1 unless
    [tool.branchmig] expected_heads says otherwise), or when merging REF would."""
    from branchmig.analysis import check as run_check

    result = run_check(_open(ctx), against=against)
    _warn(result.warnings)
    if as_json:
        _emit_json(
            {
                "ok": result.ok,
                "heads": list(result.heads),
                "against": result.against,
                "merged_heads": list(result.merged_heads),
                "expected_heads": result.expected_heads,
                "message": result.message,
                "warnings": list(result.warnings),
            }
        )
    elif fmt == "markdown":
        click.echo(reports.check_markdown(result))
        if not result.ok:
            click.echo(f"branchmig: {result.message}", err=True)
    elif result.ok:
        click.echo(result.message)
    else:
        click.echo(f"branchmig: {result.message}", err=True)
    ctx.exit(0 if result.ok else 1)


def _progress(line: str) -> None:
    ctx = click.get_current_context(silent=True)
    if ctx is not None and (ctx.find_object(dict) or {}).get("quiet"):
        return  # -q: errors and results only
    click.echo(line, err=True)


def _move_json(result: Any) -> dict[str, Any]:
    p = result.plan
    return {
        "database": result.database,
        "branch": result.branch,
        "dry_run": result.dry_run,
        "before": list(result.before),
        "after": list(result.after),
        "common": list(p.common),
        "downgrade": list(p.downgrade),
        "upgrade": list(p.upgrade),
        "changed": list(p.changed),
        "destructive": [
            {
                "revision": d.revision,
                "operation": d.operation,
                "target": d.target,
                "direction": d.direction,
            }
            for d in p.destructive
        ],
        "snapshot_saved": result.saved,
        "snapshot_restored": result.restored,
        "owner": result.owner,
        "recovered": result.recovered,
        "notes": list(result.notes),
    }


def _render_move(result: Any, *, what: str) -> None:
    p = result.plan
    if result.recovered:
        click.echo(f"note: {result.recovered}", err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if result.dry_run:
        click.echo(
            f"Dry run: {what} would change nothing in {result.database}."
            if p.is_noop and not result.restored
            else f"Dry run: {what} on {result.database}"
        )
        if result.restored:
            click.echo(f"  restore snapshot: {result.restored}")
        if not p.is_noop:
            click.echo(render_plan(p, source="the database", target=what))
        return
    if p.is_noop and not result.restored:
        click.echo(
            f"{result.database} is already at {', '.join(result.after) or 'base'}: nothing to do."
        )
        return
    if result.saved:
        click.echo(f"Saved the database as snapshot '{result.saved}'.")
    if result.restored:
        click.echo(f"Restored snapshot '{result.restored}'.")
    click.echo(
        f"Reverted {len(p.downgrade)}, applied {len(p.upgrade)}: {result.database} is "
        f"at {', '.join(result.after) or 'base'}."
    )


_snapshot_option = click.option(
    "--snapshot/--no-snapshot",
    default=None,
    help="Save a snapshot of the database first (default: [tool.branchmig] snapshots).",
)
_rehearse_option = click.option(
    "--rehearse/--no-rehearse",
    default=None,
    help="Run the plan on a copy of the database first; touch the live one only if it "
    "worked (default: [tool.branchmig] rehearse).",
)
_terminate_option = click.option(
    "--terminate-connections",
    is_flag=True,
    help="PostgreSQL/MySQL: end other sessions that block a snapshot.",
)


@main.command()
@click.argument("branch")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@_snapshot_option
@_rehearse_option
@_terminate_option
@_json_option
@click.pass_context
def switch(
    ctx: click.Context,
    branch: str,
    dry_run: bool,
    snapshot: bool | None,
    rehearse: bool | None,
    terminate_connections: bool,
    as_json: bool,
) -> None:
    """Check out BRANCH and bring the database along: revert what BRANCH lacks with the
    current scripts, check out, apply BRANCH's heads. All or nothing with snapshots."""
    from branchmig.switching import switch as run_switch

    result = run_switch(
        _open(ctx),
        branch=branch,
        dry_run=dry_run,
        snapshot=snapshot,
        terminate_connections=terminate_connections,
        progress=_progress,
        rehearse=rehearse,
    )
    if as_json:
        _emit_json(_move_json(result))
    else:
        _render_move(result, what=f"switch to '{branch}'")


@main.command()
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@_snapshot_option
@_rehearse_option
@_terminate_option
@_json_option
@click.pass_context
def sync(
    ctx: click.Context,
    dry_run: bool,
    snapshot: bool | None,
    rehearse: bool | None,
    terminate_connections: bool,
    as_json: bool,
) -> None:
    """Bring the database to the working tree's heads (after git reset --hard, a pull
    without hooks, or a failed hook)."""
    from branchmig.switching import sync as run_sync

    result = run_sync(
        _open(ctx),
        dry_run=dry_run,
        snapshot=snapshot,
        terminate_connections=terminate_connections,
        progress=_progress,
        rehearse=rehearse,
    )
    if as_json:
        _emit_json(_move_json(result))
    else:
        _render_move(result, what="sync to the working tree")


@main.command()
@_json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Code heads, database heads, pending revisions, revisions the database has that
    this branch lacks (and the refs that have them), and this database's snapshots."""
    from branchmig.status import status as get_status

    st = get_status(_open(ctx), progress=_progress)
    snaps = [
        {
            "key": x.held.key,
            "branch": x.held.branch,
            "heads": list(x.held.heads),
            "commit": x.held.commit,
            "size": x.size,
            "created": x.held.created,
            "backend": x.backend,
            "purpose": x.held.purpose,
            "present": x.present,
            "restored_by": list(x.restored_by),
            "stray": x.present and not x.restored_by,
        }
        for x in st.snapshots
    ]
    suspect = st.suspect
    if as_json:
        _emit_json(
            {
                "database": st.database,
                "branch": st.branch,
                "owner": st.owner,
                "db_heads": list(st.db_heads),
                "code_heads": list(st.code_heads),
                "pending": list(st.pending),
                "unknown": list(st.unknown),
                "unknown_found_in": {k: list(v) for k, v in st.unknown_found_in.items()},
                "snapshots": snaps,
                "stray_copies": list(st.stray_copies),
                "dead_scratches": list(st.dead_scratches),
                "interrupted": st.interrupted,
                "recovered": st.recovered,
                "suspect": None
                if suspect is None
                else {
                    "revision": suspect.revision,
                    "direction": suspect.direction,
                    "operation": suspect.operation,
                    "to": suspect.to,
                },
                "databases": [
                    {"name": d.name, "database": d.database, "heads": list(d.heads)}
                    for d in st.databases
                ],
                "split": st.split,
                "in_step": st.in_step,
                "failure": _failure_json(st.failed),
            }
        )
        ctx.exit(1 if st.failed else 0)
    if st.databases:
        for d in st.databases:
            click.echo(
                f"database:   {d.database} ({d.name or 'default'}; at "
                f"{', '.join(d.heads) or 'base'})"
            )
    else:
        click.echo(f"database:   {st.database}")
    click.echo(f"branch:     {st.branch or '(detached)'}")
    click.echo(f"code heads: {', '.join(st.code_heads) or '(none)'}")
    click.echo(f"db heads:   {', '.join(st.db_heads) or '(base)'}")
    if st.split:
        click.echo(
            f"split:      {st.split}; bring them to one revision (flask db upgrade "
            "or downgrade), then run: branchmig sync"
        )
    # A sync that would run the failed step again is not suggested: the failure's own
    # lines below say what to do instead.
    sync = "" if st.failed and st.failed.repeats else "run: branchmig sync"
    if st.pending:
        click.echo(f"pending:    {', '.join(st.pending)}" + (f"  ({sync})" if sync else ""))
    for rev in st.unknown:
        refs = st.unknown_found_in.get(rev, ())
        where = ", ".join(refs[:5]) + (f" and {len(refs) - 5} more" if len(refs) > 5 else "")
        where = where or "no ref"
        click.echo(f"unknown:    {rev} (on {where}" + (f"; {sync})" if sync else ")"))
    if st.failed:
        _render_failure(st.failed)
    for x in st.snapshots:
        h = x.held
        whose = (
            f"restored by checking out {', '.join(repr(b) for b in x.restored_by)}"
            if x.restored_by
            else f"stray: no checkout restores it; run: branchmig snapshot restore {h.key}"
        )
        if not x.present:
            whose = (
                "missing: the index names it but the server holds no copy; run: "
                f"branchmig snapshot drop {h.key}"
            )
        click.echo(
            f"snapshot:   {h.key} ({h.branch or 'detached'}, "
            f"{', '.join(h.heads) or 'base'}; {whose})"
        )
    for name in st.dead_scratches:
        click.echo(
            f"scratch:    '{name}' of a verify that was killed; run: branchmig verify, or "
            "branchmig snapshot prune --strays"
        )
    for key in st.stray_copies:
        click.echo(
            f"unindexed:  a snapshot copy '{key}' is on the server but in no index "
            "entry (left by a killed save?)"
        )
    if st.recovered:
        click.echo(f"recovered:  {st.recovered}")
    if st.interrupted:
        click.echo(
            f"interrupted: {st.interrupted}; wait for it to finish (or end that "
            "process: the next branchmig command puts its move back)"
        )
    if suspect is not None:
        click.echo(
            f"suspect:    a killed {suspect.operation} to '{suspect.to}' was running "
            f"the {suspect.direction} of '{suspect.revision}' with no snapshot: it may "
            "be half made; check its tables, then run: branchmig sync"
        )
    if st.in_step:
        click.echo("The database matches the working tree.")
    ctx.exit(1 if st.failed else 0)


def _render_failure(failed: Any) -> None:
    f = failed.failure
    what = f"the rehearsal of a {f.operation}" if f.rehearsal else f"a {f.operation}"
    left = (
        "the live database was not touched"
        if f.rehearsal
        else "the database was put back as it was"
        if f.restored
        else f"the database was left at {', '.join(f.heads) or 'base'}"
    )
    if f.half_made:
        left += (
            f" ('{f.half_made}' may be half made where DDL is not transactional: check its tables)"
        )
    click.echo(
        f"failed:     {what} to '{f.to}': {f.direction.capitalize()} of '{f.revision}' "
        f"failed: {f.cause}; {left}"
    )
    if f.fix:
        click.echo(f"fix:        {f.fix}")
    click.echo(f"next:       {failed.next}")


def _failure_json(failed: Any) -> dict[str, Any] | None:
    if failed is None:
        return None
    f = failed.failure
    return {
        "operation": f.operation,
        "to": f.to,
        "direction": f.direction,
        "revision": f.revision,
        "path": f.path,
        "cause": f.cause,
        "fix": f.fix,
        "heads": list(f.heads),
        "restored": f.restored,
        "rehearsal": f.rehearsal,
        "half_made": f.half_made,
        "at": f.at,
        "sync_repeats_it": failed.repeats,
        "next": failed.next,
    }


@main.command()
@click.pass_context
def install(ctx: click.Context) -> None:
    """Install the post-checkout, post-merge, post-rewrite and post-commit hooks (keeping
    and chaining hooks already there), recording this Python for them."""
    from branchmig.hooks import install as install_hooks

    ws = _open(ctx)
    result = install_hooks(
        repo_root=ws.repo.top,
        python=sys.executable,
        watch=ws.project.watch_paths(),
        config=ws.project.pinned_config(),
    )
    for path in result.installed:
        click.echo(f"installed {path}")
    for path in result.chained:
        click.echo(f"kept your {path.name.removesuffix('.branchmig-chained')} hook; it runs first")
    click.echo(f"watching {', '.join(result.watch)} (Python: {result.python})")


@main.command()
@click.pass_context
def uninstall(ctx: click.Context) -> None:
    """Remove branchmig's hooks and put back the hooks they chained."""
    from branchmig.gitrepo import GitRepo
    from branchmig.hooks import uninstall as uninstall_hooks

    repo = GitRepo.discover(Path.cwd())
    result = uninstall_hooks(repo_root=repo.top)
    for path in result.removed:
        click.echo(f"removed {path}")
    for path in result.restored:
        click.echo(f"restored {path}")
    if not result.removed:
        click.echo("no branchmig hooks were installed")


@main.command("merge-heads")
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
@_json_option
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
    from branchmig.merge import merge_heads as run_merge

    outcome = run_merge(
        _open(ctx),
        message=message,
        rebase=rebase,
        upgrade=not no_upgrade,
        dry_run=dry_run,
        heads=heads,
        progress=_progress,
    )
    if as_json:
        _emit_json(
            {
                "heads_before": list(outcome.heads_before),
                "written": outcome.written,
                "revision": outcome.revision,
                "rebased_onto": outcome.rebased_onto,
                "db_heads": list(outcome.upgraded),
                "dry_run": outcome.dry_run,
                "summary": outcome.summary,
            }
        )
    else:
        click.echo(outcome.summary)


@main.group(cls=_Group)
def snapshot() -> None:
    """Snapshots of the project's database: list, save, restore, drop, prune."""


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _size(n: int) -> str:
    """Sizes as the snapshot backends' progress lines give them (1000, kB): one unit."""
    from branchmig.snapshots.base import format_size

    return format_size(n)


def _snapshot_json(info: Any) -> dict[str, Any]:
    r = info.record
    return {
        "key": r.key,
        "branch": r.branch,
        "branch_exists": info.branch_exists,
        "heads": r.heads,
        "commit": r.commit,
        "size": r.size,
        "created": r.created,
        "backend": r.backend,
        "purpose": r.purpose,
        "present": info.present,
        "restored_by": list(info.restored_by),
        "stray": info.stray,
    }


@snapshot.command("list")
@_json_option
@click.pass_context
def snapshot_list(ctx: click.Context, as_json: bool) -> None:
    """Branch, heads, commit, size, age and backend of each snapshot of the database."""
    import time

    from branchmig.snapshotting import list_snapshots

    infos = list_snapshots(_open(ctx), progress=_progress)
    if as_json:
        _emit_json({"snapshots": [_snapshot_json(i) for i in infos]})
        return
    if not infos:
        click.echo("No snapshots of this database.")
        return
    now = time.time()
    rows = [
        (
            info.record.key,
            _snapshot_branch(info),
            ",".join(info.record.heads) or "base",
            (info.record.commit or "")[:7],
            _size(info.record.size),
            _age(now - info.record.created),
            info.record.backend + _snapshot_flag(info),
        )
        for info in infos
    ]
    header = ("KEY", "BRANCH", "HEADS", "COMMIT", "SIZE", "AGE", "BACKEND")
    # Columns as wide as their longest value: a long branch name shifts, never breaks them.
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
    for row in (header, *rows):
        cells = [
            cell.rjust(width) if i in (4, 5) else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=False))
        ]
        click.echo(f"{' '.join(cells[:4])} {cells[4]} {cells[5]}  {row[6]}")


def _snapshot_branch(info: Any) -> str:
    r = info.record
    return (r.branch or "(detached)") + ("" if info.branch_exists or not r.branch else " (deleted)")


def _snapshot_flag(info: Any) -> str:
    if not info.present:
        return " (missing: the index names it but the server holds no copy)"
    return " (stray: no checkout restores it)" if info.stray else ""


@snapshot.command("save")
@click.argument("name", required=False)
@_terminate_option
@click.pass_context
def snapshot_save(ctx: click.Context, name: str | None, terminate_connections: bool) -> None:
    """Save the database now as NAME (default: this branch's snapshot)."""
    from branchmig.snapshotting import save_snapshot

    record = save_snapshot(
        _open(ctx), name=name, terminate=terminate_connections, progress=_progress
    )
    click.echo(
        f"Saved snapshot '{record.key}' ({_size(record.size)}, heads "
        f"{', '.join(record.heads) or 'base'})."
    )


@snapshot.command("restore")
@click.argument("name")
@click.option(
    "--keep/--consume",
    default=None,
    help="Keep the snapshot after restoring it, to return to it again (default for one "
    "saved by name), or use it up (default for a branch's).",
)
@_terminate_option
@click.pass_context
def snapshot_restore(
    ctx: click.Context, name: str, keep: bool | None, terminate_connections: bool
) -> None:
    """Put snapshot NAME (a key or a branch) back as the database. What it replaces is
    saved first, as a snapshot of its own. A snapshot saved by name (snapshot save NAME)
    is kept, a save point to return to again; a branch's is used up (the branch saves a
    new one when it is left)."""
    from branchmig.snapshotting import restore_snapshot

    done = restore_snapshot(
        _open(ctx), name=name, keep=keep, terminate=terminate_connections, progress=_progress
    )
    record = done.record
    replaced = (
        f"the database it replaced is snapshot '{done.replaced}'"
        if done.replaced
        else "the live database was missing and is made again"
    )
    click.echo(
        f"Restored '{record.key}' (heads {', '.join(record.heads) or 'base'}); "
        + ("it is kept" if done.kept else "it is used up")
        + f", and {replaced}. If the code differs, run: branchmig sync"
    )


@snapshot.command("drop")
@click.argument("name")
@click.pass_context
def snapshot_drop(ctx: click.Context, name: str) -> None:
    """Delete snapshot NAME."""
    from branchmig.snapshotting import drop_snapshot

    record = drop_snapshot(_open(ctx), name=name, progress=_progress)
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
@_json_option
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
    from branchmig.snapshotting import prune_snapshots

    result = prune_snapshots(
        _open(ctx),
        keep=keep,
        older_than=older_than,
        include_restorable=include_restorable,
        dry_run=dry_run,
        progress=_progress,
    )
    if as_json:
        _emit_json(
            {
                "dry_run": dry_run,
                "dropped": [_snapshot_json(i) for i in result.dropped],
                "kept_restorable": [_snapshot_json(i) for i in result.kept_restorable],
                "kept_saved": [_snapshot_json(i) for i in result.kept_saved],
                "scratches_dropped": result.scratches,
            }
        )
        return
    verb = "Would drop" if dry_run else "Dropped"
    for name in result.scratches:
        click.echo(f"Dropped the scratch database '{name}' of a verify that was killed")
    for info in result.dropped:
        why = (
            "its copy already gone"
            if not info.present
            else f"restored by checking out {_names(info.restored_by)}"
            if info.restored_by
            else "no checkout restores it"
        )
        click.echo(f"{verb} '{info.record.key}' ({info.record.branch or 'detached'}: {why})")
    for info in result.kept_restorable:
        click.echo(
            f"Kept '{info.record.key}' ({info.record.branch or 'detached'}): restored by "
            f"checking out {_names(info.restored_by)}; to drop it anyway: "
            f"branchmig snapshot drop {info.record.key}"
        )
    for info in result.kept_saved:
        click.echo(
            f"Kept '{info.record.key}' ({info.record.branch or 'detached'}): saved by name; "
            f"drop it with: branchmig snapshot drop {info.record.key}"
        )
    if not result.dropped:
        click.echo("Nothing to prune.")


def _names(branches: tuple[str, ...]) -> str:
    return ", ".join(f"'{b}'" for b in branches)


@main.command()
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
    import os

    from branchmig import graphview
    from branchmig.analysis import graph_view

    ws = _open(ctx)
    view = graph_view(
        ws,
        list(dict.fromkeys(_ref(name) for name in refs or (".",))),
        database=not no_db,
        fold=not no_fold,
    )
    _warn(list(view.warnings))
    color = fmt == "text" and not os.environ.get("NO_COLOR") and sys.stdout.isatty()
    click.echo(graphview.render(view, fmt, color=color), color=color)


@main.command()
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
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown"]),
    default="text",
    help="markdown: a report to post as a pull-request comment.",
)
@_json_option
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
    from branchmig import verify as core

    if models:
        if ref != "." or against is not None or data or drift:
            raise click.UsageError(
                "--models compares the working tree's models and migrations; it takes no "
                "REF, --against, --data or --drift"
            )
        compared = core.models(_open(ctx), progress=_progress)
        if as_json:
            _emit_json(
                {
                    "ok": compared.ok,
                    "heads": list(compared.heads),
                    "differences": list(compared.differences),
                }
            )
        else:
            click.echo(reports.models_report(compared))
        ctx.exit(0 if compared.ok else 1)
    if drift:
        if ref != "." or against is not None or data:
            raise click.UsageError(
                "--drift compares the live database; it takes no REF, --against or --data"
            )
        found = core.drift(_open(ctx), progress=_progress)
        if as_json:
            _emit_json(
                {
                    "ok": found.ok,
                    "database": found.database,
                    "backend": found.backend,
                    "heads": list(found.heads),
                    "differences": [
                        d.as_dict() | {"message": core.describe_drift(d)} for d in found.differences
                    ],
                }
            )
        else:
            click.echo(reports.drift_report(found, markdown=fmt == "markdown"))
        ctx.exit(0 if found.ok else 1)
    result = core.verify(_open(ctx), ref=_ref(ref), against=against, data=data, progress=_progress)
    if as_json:
        _emit_json(
            {
                "ok": result.ok,
                "ref": ref,
                "against": result.against,
                "backend": result.backend,
                "shared": list(result.shared),
                "revisions": [
                    {
                        "revision": c.revision,
                        "path": c.path,
                        "upgrade": c.upgrade,
                        "downgrade": c.downgrade,
                        "upgrade_again": c.upgrade_again,
                    }
                    for c in result.checks
                ],
                "findings": [
                    {
                        "revision": f.revision,
                        "path": f.path,
                        "kind": f.kind,
                        "message": f.message,
                        "differences": [d.as_dict() for d in f.differences],
                    }
                    for f in result.findings
                ],
            }
        )
    else:
        click.echo(reports.verify_report(result, ref=ref, markdown=fmt == "markdown"))
    ctx.exit(0 if result.ok else 1)


@main.command()
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
    from branchmig.demo import run_demo

    result = run_demo(folder=folder, keep=keep, say=click.echo)
    if keep or folder is not None:
        click.echo(f"\nThe demo project is in {result.folder}")
    if not result.email_kept:
        raise click.exceptions.Exit(1)


def entry_point() -> None:
    """The ``branchmig`` console script: click's standalone run, then a quick exit."""
    from branchmig.process import exit_now

    try:
        main(prog_name="branchmig")
    except SystemExit as done:
        exit_now(done.code)
    exit_now(0)


if __name__ == "__main__":  # pragma: no cover
    entry_point()
