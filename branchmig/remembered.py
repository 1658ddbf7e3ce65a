"""The database as env.py last gave it, remembered with the inputs it came from, so a move
that only restores a snapshot (or does nothing) and ``status`` need not load Alembic and
run env.py again: that is most of their time on a long history.

What env.py gives depends on env.py itself, ``alembic.ini``, ``pyproject.toml``, the
project modules env.py imports, a ``.env`` file it loads, and the environment variables it
names. ``inputs`` fingerprints all of these; a remembered database is used only while the
fingerprint is the same, the file is the same one (device and inode), and its
``alembic_version`` says what branchmig last left there. Anything else (a Flask app, a
server database, an env.py that imports relatively or edits ``sys.path``, a database
touched by plain Alembic) goes the full way through env.py, which remembers again.
"""

from __future__ import annotations

import ast
import hashlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from branchmig.project import Project

# What env.py may import without its answer depending on the project's own code.
_SAFE_IMPORTS = frozenset(
    {
        "__future__",
        "alembic",
        "sqlalchemy",
        "logging",
        "os",
        "sys",
        "typing",
        "pathlib",
        "collections",
        "dataclasses",
        "re",
        "json",
        "enum",
        "datetime",
        "functools",
        "itertools",
        "asyncio",
        "contextlib",
        "warnings",
        "configparser",
        "urllib",
        "dotenv",
    }
)


@dataclass(frozen=True)
class Remembered:
    """A SQLite database env.py connected to, and how it was known."""

    inputs: str  # the fingerprint of what env.py read
    url: str  # as env.py's engine rendered it, password included
    masked: str
    key: str  # its DatabaseId key
    path: str  # the file, absolute
    device: int
    inode: int

    def as_json(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "url": self.url,
            "masked": self.masked,
            "key": self.key,
            "path": self.path,
            "device": self.device,
            "inode": self.inode,
        }

    @classmethod
    def from_json(cls, data: Any) -> Remembered | None:
        try:
            return cls(
                str(data["inputs"]),
                str(data["url"]),
                str(data["masked"]),
                str(data["key"]),
                str(data["path"]),
                int(data["device"]),
                int(data["inode"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


def inputs(project: Project) -> str | None:
    """The fingerprint of everything env.py's URL can come from, or None when that cannot
    be told from outside (a Flask-Migrate app, an env.py that does not parse, imports
    relatively or changes ``sys.path``)."""
    if project.kind != "alembic":
        return None
    root = project.run_dir  # where env.py runs, and imports from
    try:
        env_py = project.env_py
        text = env_py.read_bytes()
        tree = ast.parse(text)
    except (OSError, SyntaxError, ValueError):
        return None
    if b"version_table" in text:
        return None  # another table than alembic_version: env.py knows which
    digest = hashlib.sha1(text)
    for path in (project.config_path, project.toml_path):
        digest.update(
            b"\0" + (str(path).encode() + b"\0" + _read(path) if path is not None else b"-")
        )
    names: set[str] = set()
    local: list[Path] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                return None
            found = _local_modules(root, node.module or "", [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            each = [_local_modules(root, a.name, []) for a in node.names]
            found = None if None in each else [p for paths in each for p in paths or ()]
        elif (
            isinstance(node, ast.Attribute)
            and node.attr == "path"
            and (isinstance(node.value, ast.Name) and node.value.id == "sys")
        ):
            return None  # sys.path edited: which module an import finds is anyone's guess
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)
            continue
        else:
            continue
        if found is None:
            return None
        local.extend(found)
    for path in sorted(set(local)):
        digest.update(b"\0" + str(path).encode() + b"\0" + _read(path))
    # The app's settings may read a .env file (pydantic's env_file="../.env"): any of
    # them from env.py's folder up to the top.
    folder = root
    while True:
        digest.update(b"\0.env\0" + _read(folder / ".env"))
        if folder == project.repo_root or folder.parent == folder:
            break
        folder = folder.parent
    for name in sorted(n for n in names if n.isidentifier() and n.upper() == n):
        value = os.environ.get(name)
        digest.update(f"\0{name}={value!r}".encode())
    return digest.hexdigest()


def _local_modules(root: Path, module: str, names: list[str]) -> list[Path] | None:
    """The project's own files an import reads ([] for a library's; None for a project
    package that is not a plain file tree)."""
    top = module.split(".")[0]
    if top in _SAFE_IMPORTS or not ((root / top).is_dir() or (root / f"{top}.py").is_file()):
        return []
    base = root.joinpath(*module.split("."))
    found = [p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()]
    found += [p for n in names for p in (base / f"{n}.py",) if p.is_file()]
    return found or None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b"-"


def identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def read_heads(path: str) -> tuple[str, ...] | None:
    """``alembic_version`` of the SQLite file, read-only; () without the table; None when
    it cannot be read."""
    from urllib.parse import quote

    try:
        conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
        ).fetchone()
        if not exists:
            return ()
        return tuple(sorted(r[0] for r in conn.execute("SELECT version_num FROM alembic_version")))
    except sqlite3.Error:
        return None
    finally:
        conn.close()
