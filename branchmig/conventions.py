"""What every ``branchmig`` command shares on the command line: the options each takes
(-c, -v, -q, --json, and the moves' --snapshot, --rehearse, --terminate-connections),
opening the project, errors translated once into a line and an exit code, progress on
standard error and JSON on standard output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar

import click

from branchmig.errors import BranchmigError, MoveFailed, SessionsBlockingError
from branchmig.workspace import WORKTREE, Workspace

F = TypeVar("F", bound=Callable[..., Any])


class Group(click.Group):
    """Turns every BranchmigError into one line on stderr and its exit code: the only
    place errors are translated. Every command added takes the conventions' options
    after its name too (``branchmig status -q`` is ``branchmig -q status``)."""

    def __init__(
        self,
        *args: Any,
        lazy: Collection[str] = (),
        load: Callable[[str], click.Command] | None = None,
        **kwargs: Any,
    ) -> None:
        """``lazy``: commands listed by name, made by ``load(name)`` when first asked for."""
        super().__init__(*args, **kwargs)
        self.lazy, self.load = tuple(lazy), load

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        taken = {param.name for param in cmd.params}  # a lazy command met by a second group
        cmd.params.extend(p for p in conventions() if p.name not in taken)
        super().add_command(cmd, name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy and self.load is not None:
            self.add_command(self.load(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BranchmigError as err:
            line = error_line(err)
            click.echo(f"branchmig: {line}", err=True)
            if "--json" in sys.argv[1:]:  # a machine reads stdout: the error is JSON too
                emit_json(
                    {
                        "error": line,
                        "exit_code": err.exit_code,
                        "kind": type(err).__name__,
                        **err.facts(),
                    }
                )
            ctx.exit(err.exit_code)


# What a command line does about sessions that block a snapshot: its own option.
SESSIONS_ADVICE = (
    "Close them (stop the app server, dispose its pool), or run the command again "
    "with --terminate-connections."
)


def error_line(err: BranchmigError) -> str:
    """``err``'s line with the command line's advice added where the error leaves it to
    its caller: sessions blocking a snapshot, alone or as the cause of a failed move."""

    blocking = err.cause if isinstance(err, MoveFailed) else err
    if not isinstance(blocking, SessionsBlockingError):
        return str(err)
    advised = f"{blocking} {SESSIONS_ADVICE}"
    return err.line(advised) if isinstance(err, MoveFailed) else advised


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


def conventions(*, json: bool = False) -> list[click.Option]:
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


json_option = click.option(
    "--json", "as_json", is_flag=True, callback=_remember, help="One JSON object on stdout."
)


def open_workspace(ctx: click.Context) -> Workspace:
    obj = ctx.find_object(dict) or {}
    config = obj.get("config", ())
    chosen = config[0] if len(config) == 1 else (list(config) or None)
    ws = Workspace.open(Path.cwd(), config=chosen)
    ctx.call_on_close(ws.close)
    if obj.get("verbose"):
        ws.show_alembic_log()
    return ws


def emit_json(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def echo(lines: list[str], *, err: bool = False) -> None:
    for line in lines:
        click.echo(line, err=err)


def show(
    data: dict[str, Any], out: list[str], *, as_json: bool, notes: list[str] | None = None
) -> None:
    """A result as reports render it: its JSON object on standard output with --json,
    else its notes on standard error and its lines on standard output."""
    if as_json:
        emit_json(data)
        return
    echo(notes or [], err=True)
    echo(out)


def warn(lines: tuple[str, ...] | list[str]) -> None:
    for line in lines:
        click.echo(f"warning: {line}", err=True)


def as_ref(value: str) -> str:
    return WORKTREE if value in (".", "WORKTREE") else value


def progress(line: str) -> None:
    ctx = click.get_current_context(silent=True)
    if ctx is not None and (ctx.find_object(dict) or {}).get("quiet"):
        return  # -q: errors and results only
    click.echo(line, err=True)


markdown_format = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown"]),
    default="text",
    help="markdown: a report to post as a pull-request comment.",
)


_dry_run_option = click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
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
terminate_option = click.option(
    "--terminate-connections",
    is_flag=True,
    help="PostgreSQL/MySQL: end other sessions that block a snapshot.",
)


def move_options(command: F) -> F:
    """--dry-run, --snapshot, --rehearse, --terminate-connections and --json: what
    ``switch`` and ``sync`` take."""
    for option in reversed(
        (_dry_run_option, _snapshot_option, _rehearse_option, terminate_option, json_option)
    ):
        command = option(command)
    return command
