"""The database as env.py last gave it, remembered with the inputs it came from, so a move
that only restores a snapshot (or does nothing) and ``status`` need not load Alembic and
run env.py again: that is most of their time on a long history.

What env.py gives depends on env.py itself, ``alembic.ini``, ``pyproject.toml``, the
project modules env.py imports, a ``.env`` file it loads, and the environment variables it
names or reads (``reading_environ`` records those while env.py runs). ``inputs``
fingerprints all of these; a remembered database is used only while the fingerprint is
the same. A SQLite one also while the file is the same one (device and inode), and, for
a move, while its ``alembic_version`` says what branchmig last left there. A PostgreSQL
one is remembered for ``status`` and ``snapshot list`` only (``pgsurvey`` reads it), and
only when env.py says nothing that could put ``alembic_version`` elsewhere than where a
plain connection to its URL finds it. Anything else (a Flask app, an env.py that imports
relatively or edits ``sys.path``) goes the full way through env.py, which remembers again.
"""

from __future__ import annotations

import ast
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from branchmig.project import Project

# Words in env.py (or the project modules it imports) that may put alembic_version where a
# plain connection to the URL does not look: a server database is then not remembered.
_ELSEWHERE = (b"version_table", b"search_path", b"connect_args", b"schema_translate_map")
# An environment read as a whole (iterated, copied): every variable counts.
ALL = "*"

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
    """A database env.py connected to, and how it was known: a SQLite file (``path``,
    ``device``, ``inode``) or a PostgreSQL database (``server``: how ``pgsurvey`` reaches
    it)."""

    inputs: str  # the fingerprint of what env.py read
    url: str  # as env.py's engine rendered it, password included
    masked: str
    key: str  # its DatabaseId key
    path: str  # the file, absolute ("" for a server database)
    device: int
    inode: int
    kind: str = "sqlite"  # or "postgresql"
    environ: tuple[str, ...] = ()  # the variables env.py read
    server: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "url": self.url,
            "masked": self.masked,
            "key": self.key,
            "path": self.path,
            "device": self.device,
            "inode": self.inode,
            "kind": self.kind,
            "environ": list(self.environ),
            "server": self.server,
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
                str(data.get("kind", "sqlite")),
                tuple(str(n) for n in data.get("environ", ())),
                dict(data.get("server", {})),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


@contextmanager
def reading_environ() -> Iterator[set[str]]:
    """The names of the environment variables read meanwhile (``os.environ[...]``,
    ``.get``, ``os.getenv``, ``in``), or ``ALL`` among them when the environment was read
    whole. Every reference to ``os.environ`` reads through its one mapping, which is
    watched for the block."""
    environ = os.environ
    data = environ._data  # type: ignore[attr-defined]
    seen: set[str] = set()
    watching = [True]

    class Watched(dict):  # type: ignore[type-arg]
        def __getitem__(self, key: Any) -> Any:
            if watching:
                seen.add(environ.decodekey(key))
            return super().__getitem__(key)

        def __iter__(self) -> Iterator[Any]:
            if watching:
                seen.add(ALL)
            return super().__iter__()

    watched = Watched(data)
    environ._data = watched  # type: ignore[attr-defined]
    try:
        yield seen
    finally:
        watching.clear()
        written = dict.copy(watched)
        environ._data = data  # type: ignore[attr-defined]
        data.clear()
        data.update(written)  # what the block set or removed stays so


def inputs(project: Project, environ: tuple[str, ...] = (), *, server: bool = False) -> str | None:
    """The fingerprint of everything env.py's URL can come from, or None when that cannot
    be told from outside (a Flask-Migrate app, an env.py that does not parse, imports
    relatively or changes ``sys.path``; for a ``server`` database, one that may look for
    ``alembic_version`` elsewhere). ``environ``: the variables env.py was seen to read."""
    if project.kind != "alembic":
        return None
    root = project.run_dir  # where env.py runs, and imports from
    try:
        env_py = project.env_py
        text = env_py.read_bytes()
        tree = ast.parse(text)
    except (OSError, SyntaxError, ValueError):
        return None
    if b"version_table" in text or (server and _elsewhere(text)):
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
        module = _read(path)
        if server and _elsewhere(module):
            return None
        digest.update(b"\0" + str(path).encode() + b"\0" + module)
    # The app's settings may read a .env file (pydantic's env_file="../.env"): any of
    # them from env.py's folder up to the top.
    folder = root
    while True:
        digest.update(b"\0.env\0" + _read(folder / ".env"))
        if folder == project.repo_root or folder.parent == folder:
            break
        folder = folder.parent
    wanted = {n for n in names if n.isidentifier() and n.upper() == n} | set(environ)
    _digest_environ(digest, wanted)
    return digest.hexdigest()


def _elsewhere(text: bytes) -> bool:
    return any(word in text for word in _ELSEWHERE)


def _digest_environ(digest: Any, names: set[str]) -> None:
    if ALL in names:
        names = names | set(os.environ)
    for name in sorted(names - {ALL}):
        value = os.environ.get(name)
        digest.update(f"\0{name}={value!r}".encode())


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
    import sqlite3  # its library loads only when a remembered file is read
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
