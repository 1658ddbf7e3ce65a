"""The ``branchmig`` command: parse, call one core function, render. No logic here.

The commands that open the database live in ``dbcli``, loaded when one of them runs, so
that ``heads``, ``plan`` and ``check`` stay fast; SQLAlchemy and Alembic load inside the
functions that use them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from branchmig.analysis import check as run_check
from branchmig.analysis import plan_between
from branchmig.conventions import (
    Group,
    as_ref,
    conventions,
    echo,
    json_option,
    markdown_format,
    open_workspace,
    show,
    warn,
)
from branchmig.gitrepo import GitRepo
from branchmig.heads import heads as heads_of
from branchmig.heads import heads_output
from branchmig.hooks import install as install_hooks
from branchmig.hooks import uninstall as uninstall_hooks
from branchmig.process import exit_now
from branchmig.reports import analysis as analysis_reports
from branchmig.reports import hooks as hook_reports

# The commands of ``dbcli``, by name.
DATABASE_COMMANDS = (
    "switch",
    "sync",
    "status",
    "merge-heads",
    "snapshot",
    "verify",
    "graph",
    "demo",
)


def _database_command(name: str) -> click.Command:
    # A door: the move's machinery (~30 ms) loads only for a command that opens the database.
    from branchmig.dbcli import COMMANDS

    return COMMANDS[name]


@click.group(
    cls=Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    params=conventions(json=True),
    lazy=DATABASE_COMMANDS,
    load=_database_command,
)
@click.version_option(package_name="branchmig", prog_name="branchmig")
def main() -> None:
    """Git-aware Alembic migrations: the database follows every checkout, losing no data."""


@main.command()
@click.argument("ref", required=False, default=".")
@json_option
@click.pass_context
def heads(ctx: click.Context, ref: str, as_json: bool) -> None:
    """The head revisions of the graph at REF (default: the working tree, '.')."""
    out, err = heads_output(heads_of(open_workspace(ctx), ref=as_ref(ref)), as_json=as_json)
    click.echo(err, err=True, nl=False)
    click.echo(out, nl=False)


@main.command()
@click.argument("source", metavar="FROM")
@click.argument("target", metavar="TO")
@markdown_format
@json_option
@click.pass_context
def plan(ctx: click.Context, source: str, target: str, fmt: str, as_json: bool) -> None:
    """What moving a database from FROM's heads to TO's heads does (refs; '.' is the
    working tree). Touches no database."""
    result = plan_between(open_workspace(ctx), source=as_ref(source), target=as_ref(target))
    warn(result.warnings)
    report = (
        analysis_reports.plan_markdown(
            result.plan, source=result.source, target=result.target, warnings=result.warnings
        )
        if fmt == "markdown"
        else analysis_reports.plan_text(result.plan, source=result.source, target=result.target)
    )
    show(analysis_reports.plan_json(result), [report], as_json=as_json)


@main.command()
@click.option(
    "--against",
    metavar="REF",
    default=None,
    help="Also fail when merging REF would leave several heads.",
)
@markdown_format
@json_option
@click.pass_context
def check(ctx: click.Context, against: str | None, fmt: str, as_json: bool) -> None:
    """Exit 1 when the working tree has more heads than expected (1 unless
    [tool.branchmig] expected_heads says otherwise), or when merging REF would."""
    result = run_check(open_workspace(ctx), against=against)
    warn(result.warnings)
    out, failed = analysis_reports.check_text(result, markdown=fmt == "markdown")
    show(analysis_reports.check_json(result), out, as_json=as_json)
    if not as_json:
        echo(failed, err=True)
    ctx.exit(0 if result.ok else 1)


@main.command()
@click.pass_context
def install(ctx: click.Context) -> None:
    """Install the post-checkout, post-merge, post-rewrite and post-commit hooks (keeping
    and chaining hooks already there), recording this Python for them."""
    ws = open_workspace(ctx)
    result = install_hooks(
        repo_root=ws.repo.top,
        python=sys.executable,
        watch=ws.project.watch_paths(),
        config=ws.project.pinned_config(),
    )
    echo(hook_reports.installed_text(result))


@main.command()
@click.pass_context
def uninstall(ctx: click.Context) -> None:
    """Remove branchmig's hooks and put back the hooks they chained."""
    repo = GitRepo.discover(Path.cwd())
    result = uninstall_hooks(repo_root=repo.top)
    echo(hook_reports.uninstalled_text(result))


def entry_point() -> None:
    """The ``branchmig`` console script: click's standalone run, then a quick exit."""
    try:
        main(prog_name="branchmig")
    except SystemExit as done:
        exit_now(done.code)
    exit_now(0)


if __name__ == "__main__":  # pragma: no cover
    entry_point()
