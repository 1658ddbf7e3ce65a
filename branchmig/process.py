"""The process's edges: the lines a command says as it goes (``Progress``), and ending
the process quickly.

Once SQLAlchemy and Alembic are loaded, the interpreter's own teardown (collecting
their many modules and objects) takes 0.15-0.2 s here: a quarter of a switch, paid on
every checkout the hook handles. The command's work is done and its files are closed by
then, so the entry points flush what is buffered and leave without that teardown.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

# Where a command's progress lines go (stderr, or a test's list); one line a call.
Progress = Callable[[str], None]


def exit_now(code: object) -> NoReturn:
    """Flush logging and the standard streams, then end the process with ``code`` (an
    int, None for 0, or a message for stderr and 1, as ``sys.exit`` takes)."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    if "logging" in sys.modules:
        import logging

        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (branchmig heads | head -1)
            status = status or 1
    os._exit(status)
