"""The ``branchmig`` command: parse, call one core function, render. No logic here.

Heavy modules (SQLAlchemy, Alembic, GitPython) are imported inside the commands that
need them, so ``heads``, ``plan`` and ``check`` stay fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from branchmig import __version__
from branchmig.errors import BranchmigError
from branchmig.workspace import WORKTREE, Workspace

F = TypeVar("F", bound=Callable[..., Any])


class _Group(click.Group):
    """Turns every BranchmigError into one line on stderr and its exit code: the only
    place errors are translated."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BranchmigError as err:
            click.echo(f"branchmig: {err}", err=True)
            ctx.exit(err.exit_code)


def _open(ctx: click.Context) -> Workspace:
    obj = ctx.find_root().obj
    ws = Workspace.open(Path.cwd(), config=obj.get("config"))
    ctx.call_on_close(ws.close)
    return ws


def _emit_json(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def _warn(lines: tuple[str, ...] | list[str]) -> None:
    for line in lines:
        click.echo(f"warning: {line}", err=True)


def _ref(value: str) -> str:
    return WORKTREE if value in (".", "WORKTREE") else value


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-c", "--config", type=click.Path(path_type=Path), default=None,
              help="The alembic.ini to use (default: found from the repository).")
@click.version_option(__version__, prog_name="branchmig")
@click.pass_context
def main(ctx: click.Context, config: Path | None) -> None:
    """Git-aware Alembic migrations: the database follows every checkout, losing no data."""
    ctx.obj = {"config": config}


@main.command()
@click.argument("ref", required=False, default=".")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@click.pass_context
def heads(ctx: click.Context, ref: str, as_json: bool) -> None:
    """The head revisions of the graph at REF (default: the working tree, '.')."""
    from branchmig.analysis import heads as heads_of

    result = heads_of(_open(ctx), ref=_ref(ref))
    _warn(result.warnings)
    if as_json:
        _emit_json({"ref": result.ref, "heads": list(result.heads)})
        return
    for head, path in zip(result.heads, result.paths, strict=True):
        click.echo(f"{head} (head)  {path}")


@main.command()
@click.argument("source", metavar="FROM")
@click.argument("target", metavar="TO")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@click.pass_context
def plan(ctx: click.Context, source: str, target: str, as_json: bool) -> None:
    """What moving a database from FROM's heads to TO's heads does (refs; '.' is the
    working tree). Touches no database."""
    from branchmig.analysis import plan_between

    result = plan_between(_open(ctx), source=_ref(source), target=_ref(target))
    _warn(result.warnings)
    p = result.plan
    if as_json:
        _emit_json({
            "from": result.source, "to": result.target, "common": list(p.common),
            "downgrade": list(p.downgrade), "upgrade": list(p.upgrade),
            "changed": list(p.changed),
            "destructive": [{"revision": d.revision, "operation": d.operation,
                             "target": d.target} for d in p.destructive],
        })
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
@click.option("--against", metavar="REF", default=None,
              help="Also fail when merging REF would leave several heads.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@click.pass_context
def check(ctx: click.Context, against: str | None, as_json: bool) -> None:
    """Exit 1 when the working tree has more heads than expected (1 unless
    [tool.branchmig] expected_heads says otherwise), or when merging REF would."""
    from branchmig.analysis import check as run_check

    result = run_check(_open(ctx), against=against)
    if as_json:
        _emit_json({"ok": result.ok, "heads": list(result.heads), "against": result.against,
                    "merged_heads": list(result.merged_heads),
                    "expected_heads": result.expected_heads, "message": result.message})
    elif result.ok:
        click.echo(result.message)
    else:
        click.echo(f"branchmig: {result.message}", err=True)
    ctx.exit(0 if result.ok else 1)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
