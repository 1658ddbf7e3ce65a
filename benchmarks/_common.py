"""What the benchmark scripts share."""

from __future__ import annotations

import compileall
import os
from pathlib import Path

import branchmig


def installed_like_env() -> dict[str, str]:
    """The environment for timed commands, with branchmig's bytecode compiled as
    ``pip install`` leaves it. Some machines (this project's CI among them) set
    PYTHONDONTWRITEBYTECODE, so an editable checkout would recompile every module on
    every run: 40 ms that no installed copy pays, and that plain Alembic (compiled by pip)
    does not pay either."""
    compileall.compile_dir(str(Path(branchmig.__file__).parent), quiet=1)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env
