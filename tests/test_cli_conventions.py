"""The command line's small conventions, run through the real console script: -c, -v, -q
and --json before the command or after it alike, ``--version`` from the package
metadata, counts in the right number, and ``snapshot list``'s columns holding a long
branch name."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import click
import pytest
from e2e_projects import BASE, F1, Project
from gitutil import run_branchmig

from branchmig.cli import main


def _commands(group: click.Group, path: str = "") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # the lazily loaded ones too
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        found.append((f"{path}{name}", cmd))
        if isinstance(cmd, click.Group):
            found += _commands(cmd, f"{path}{name} ")
    return found


@pytest.mark.parametrize(("name", "cmd"), _commands(main), ids=lambda x: str(x))
def test_every_command_takes_config_verbose_and_quiet_after_its_name(
    name: str, cmd: click.Command
) -> None:
    options = {opt for p in cmd.params for opt in getattr(p, "opts", ())}
    assert {"-c", "--config", "-v", "--verbose", "-q", "--quiet"} <= options, name


def test_quiet_and_json_read_the_same_before_and_after_the_command(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    after = p.ok("status", "-q", "--json")
    before = p.ok("-q", "--json", "status")
    assert json.loads(after.stdout) == json.loads(before.stdout)
    assert json.loads(after.stdout)["db_heads"] == [F1]
    assert p.ok("--json", "snapshot", "list").stdout == p.ok("snapshot", "list", "--json").stdout
    # `heads` and `heads --json` are answered before the CLI loads; the other forms by it.
    assert p.ok("heads", "-q").stdout == p.ok("-q", "heads").stdout == p.ok("heads").stdout
    assert p.ok("--json", "heads").stdout == p.ok("heads", "--json").stdout


def test_quiet_after_the_command_leaves_out_the_progress_lines(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    loud = p.ok("switch", "feature2")
    assert "saving the database of 'feature1'" in loud.stderr, loud.stderr
    quiet = p.ok("switch", "feature1", "-q")
    assert quiet.stderr == "", quiet.stderr
    assert "Restored snapshot" in quiet.stdout


def test_verbose_after_the_command_shows_alembics_lines(db_at_main_head: Project) -> None:
    p = db_at_main_head
    assert "Running upgrade" in p.ok("switch", "feature1", "-v").stderr


def test_config_after_the_command_is_the_one_used(db_at_main_head: Project) -> None:
    p = db_at_main_head
    assert p.ok("status", "-c", "alembic.ini").returncode == 0
    for args in (("status", "-c", "elsewhere.ini"), ("-c", "elsewhere.ini", "status")):
        proc = p.branchmig(*args)
        assert proc.returncode == 2
        assert proc.stderr.strip().endswith(f"No such config file: '{p.root / 'elsewhere.ini'}'"), (
            proc.stderr
        )


@pytest.mark.parametrize("args", [("--json", "install"), ("--json", "snapshot", "save")])
def test_json_before_a_command_that_prints_none_is_a_usage_error(
    db_at_main_head: Project, args: tuple[str, ...]
) -> None:
    proc = db_at_main_head.branchmig(*args)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == (
        f"Error: branchmig {' '.join(args[1:])} prints no JSON; leave out --json"
    )
    assert not (db_at_main_head.root / ".git" / "hooks" / "post-checkout").exists()


def test_version_is_the_package_metadatas(tmp_path: Path) -> None:
    proc = run_branchmig(tmp_path, "--version")
    assert proc.returncode == 0
    assert proc.stdout == f"branchmig, version {version('branchmig')}\n"


def test_one_revision_is_counted_as_one(db_at_main_head: Project) -> None:
    proc = db_at_main_head.ok("verify", "--drift")
    assert f"to {BASE} (1 revision)" in proc.stderr, proc.stderr


def test_a_long_branch_name_keeps_the_snapshot_columns(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    long_name = "feature2-with-a-branch-name-longer-than-any-column-of-the-table"
    p.git("branch", long_name, "feature2")
    p.ok("switch", long_name)  # saves feature1
    p.ok("switch", "feature1")  # saves the long-named branch, restores feature1's
    p.ok("snapshot", "save", "by-hand")
    lines = p.ok("snapshot", "list").stdout.splitlines()
    assert len(lines) == 3 and any(long_name in line for line in lines), lines
    for column in ("HEADS", "COMMIT", "BACKEND"):
        at = lines[0].index(column)
        assert all(line[at - 1] == " " and line[at] != " " for line in lines[1:]), lines


def test_sessions_blocking_a_snapshot_get_the_command_lines_advice() -> None:
    """The error keeps its facts and its line without advice; the command line adds its
    own, alone or inside the failed move's line, where it said it before."""
    from branchmig.conventions import error_line
    from branchmig.errors import MoveFailed
    from branchmig.snapshots import SessionsBlockingError

    blocking = SessionsBlockingError(
        "Cannot save snapshot 'k' of x: 1 other session is connected: pid 7 (app, from h).",
        sessions=["pid 7 (app, from h)"],
    )
    assert "--terminate-connections" not in str(blocking)
    assert blocking.sessions == ["pid 7 (app, from h)"]
    assert error_line(blocking) == (
        f"{blocking.message} Close them (stop the app server, dispose its pool), or run the "
        "command again with --terminate-connections."
    )
    moved = error_line(MoveFailed(blocking, restored=True))
    assert moved.endswith(
        "or run the command again with --terminate-connections. Nothing changed: the "
        "database is as it was before"
    ), moved
