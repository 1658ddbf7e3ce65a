"""The ``branchmig`` console script (and ``python -m branchmig``).

``branchmig heads`` and ``branchmig heads --json`` on scripts it has answered for
before (what a shell prompt asks at every prompt) are answered here, from the
remembered answer, without loading click and the CLI: ~30 ms of a ~80 ms run on this
machine. Every other command line, and any question without a remembered answer or
with an error to report, goes to the CLI, which prints the same."""

from __future__ import annotations

import sys
from pathlib import Path

from branchmig.errors import BranchmigError
from branchmig.heads import heads_output, remembered_heads
from branchmig.process import exit_now
from branchmig.workspace import Workspace


def main() -> None:
    try:
        args = sys.argv[1:]
        if args[:1] == ["heads"] and args[1:] in ([], ["--json"]):
            _remembered_heads(as_json=args[1:] == ["--json"])
        # A door: click and the CLI (~25 ms) load only when no remembered answer will do.
        from branchmig.cli import entry_point

        entry_point()
    except KeyboardInterrupt:
        # Ctrl-C while the CLI loads (once a command runs, it puts back what it changed
        # and click says "Aborted!"): one line, as a shell's own commands do.
        sys.stderr.write("branchmig: interrupted\n")
        sys.exit(130)


def _remembered_heads(*, as_json: bool) -> None:
    """Print the remembered answer and exit; return (to the CLI) when there is none."""
    try:
        ws = Workspace.open(Path.cwd())
    except BranchmigError:
        return  # the CLI says what is wrong
    try:
        found = remembered_heads(ws)
    finally:
        ws.close()
    if found is None:
        return
    out, err = heads_output(found, as_json=as_json)
    sys.stderr.write(err)
    sys.stdout.write(out)
    exit_now(0)
