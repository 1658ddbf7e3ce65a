"""What branchmig knows about database URLs, in one place: the password masked, the
dialect and backend a URL names, whether two URLs reach one database, a copy's URL
beside the live one, the sync driver's URL, and the file a SQLite URL names.

Importing it is cheap: SQLAlchemy loads inside the functions that parse a URL, and the
plainest ``sqlite:///path`` is read without it (the hook's fast path).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from branchmig.errors import SnapshotError

# The same split as SQLAlchemy's make_url: the password runs to the first "@".
_PASSWORD_IN_AUTHORITY = re.compile(r"^(?P<head>[\w+.-]+://[^:/@]*):(?P<password>[^@]*)@")
_PASSWORD_IN_QUERY = re.compile(r"(?P<head>[?&]password=)[^&]*", re.IGNORECASE)
_DIALECT = re.compile(r"^(?P<dialect>[a-zA-Z0-9_]+)(?:\+[a-zA-Z0-9_]+)?://")
_BACKENDS = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
}
# The sync driver of each backend, for branchmig's own connections to a database env.py
# reaches through an async one (aiosqlite, asyncpg, aiomysql): the same server, the same
# database, no event loop.
_SYNC_DRIVERS = {"sqlite": "pysqlite", "postgresql": "psycopg", "mysql": "pymysql"}


def mask_url(url: str) -> str:
    """The URL with its password shown as ``***``, in the authority and in the query.

    ``postgresql://app:s3cret@db/app`` → ``postgresql://app:***@db/app``: SQLAlchemy's own
    ``URL.render_as_string(hide_password=True)``, which renders a URL env.py's engine gave
    exactly as it was, plus a ``password=`` in the query, which SQLAlchemy shows. A URL
    SQLAlchemy refuses is masked as text.
    """
    from sqlalchemy.engine import make_url

    try:
        masked = make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - ArgumentError, ValueError: not a URL SQLAlchemy reads
        masked = _PASSWORD_IN_AUTHORITY.sub(r"\g<head>:***@", url, count=1)
    return _PASSWORD_IN_QUERY.sub(r"\g<head>***", masked)


def dialect_of(url: str) -> str:
    """The dialect a ``dialect[+driver]://`` URL names, lower case; "" for none."""
    match = _DIALECT.match(url)
    return match.group("dialect").lower() if match else ""


def dialect_named(url: str) -> str:
    """What a URL has before its first ``:`` (and ``+``), lower case: the dialect of a
    URL, or the text to quote when it is none branchmig knows."""
    return url.split(":", 1)[0].split("+", 1)[0].lower()


def backend_of(url: str) -> str | None:
    """ "sqlite", "postgresql" or "mysql" (MariaDB's too); None for another dialect."""
    return _BACKENDS.get(dialect_named(url))


def same_database(a: str, b: str) -> bool:
    """Whether two URLs reach one database: one SQLite file, or one database of one
    server (drivers, users and options aside)."""
    from sqlalchemy.engine import make_url

    x, y = make_url(a), make_url(b)
    if x.get_backend_name() == "sqlite" or y.get_backend_name() == "sqlite":
        return x.get_backend_name() == y.get_backend_name() and os.path.realpath(
            x.database or ""
        ) == os.path.realpath(y.database or "")
    return (x.get_backend_name(), x.host, x.port, x.database) == (
        y.get_backend_name(),
        y.host,
        y.port,
        y.database,
    )


def copy_url(url: str, backend: str, location: str) -> str:
    """The URL of a copy of the database at ``url``, with its driver and credentials:
    the file ``location`` for SQLite (its query left out), else the database named
    ``location`` on the same server. Password included: never print it."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if backend == "sqlite":
        return parsed.set(database=location, query={}).render_as_string(hide_password=False)
    return parsed.set(database=location).render_as_string(hide_password=False)


def sync_url(url: str) -> str:
    """``url`` itself, or with its dialect's sync driver when it names an async one."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not getattr(parsed.get_dialect(), "is_async", False):
        return url
    driver = _SYNC_DRIVERS[backend_of(url) or ""]
    return parsed.set(drivername=f"{parsed.get_backend_name()}+{driver}").render_as_string(
        hide_password=False
    )


def parse_server_url(url: str) -> tuple[str, Any]:
    """The masked URL and SQLAlchemy's parsed ``URL`` of a database on a server, which
    must name a database."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    masked = mask_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as err:
        raise SnapshotError(f"Cannot read the database URL {masked}: {err}") from err
    if not parsed.database:
        raise SnapshotError(f"The database URL {masked} names no database: nothing to snapshot.")
    return masked, parsed


def plain_sqlite_path(url: str) -> Path | None:
    """The file of a plain ``sqlite:///path`` URL (no query, nothing %-encoded), made
    absolute, read without loading SQLAlchemy; None for any other URL."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url or "%" in url:
        return None
    database = url[len(prefix) :]
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(os.path.abspath(os.path.expanduser(database)))


def sqlite_path(url: str) -> Path:
    """The file an SQLAlchemy ``sqlite://`` URL names, made absolute."""
    plain = plain_sqlite_path(url)
    if plain is not None:
        return plain
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as err:
        raise SnapshotError(f"Cannot read the database URL {url!r}: {err}") from err
    database = parsed.database or ""
    if parsed.query.get("uri") in ("true", "1") and database.startswith("file:"):
        if parsed.query.get("mode") == "memory" or "mode=memory" in database:
            database = ":memory:"
        else:
            database = database[len("file:") :].split("?", 1)[0]
    if database in ("", ":memory:"):
        raise SnapshotError(
            "An in-memory SQLite database cannot be snapshotted: it lives only as long as its "
            "connection. Point the database URL at a file, or run with --no-snapshot."
        )
    return Path(os.path.abspath(os.path.expanduser(database)))


def read_only_url(url: str) -> str:
    """The database's URL for reading only: a SQLite file opened ``mode=ro``."""
    if backend_of(url) != "sqlite":
        return url
    return f"sqlite:///file:{quote(str(sqlite_path(url)))}?mode=ro&uri=true"


def relative_sqlite(url: str) -> bool:
    """Whether a SQLite URL names its file relative to the current folder."""
    from sqlalchemy.engine import make_url

    database = make_url(url).database or ""
    if database.startswith("file:"):
        database = database[len("file:") :]
    return bool(database) and database != ":memory:" and not os.path.isabs(database)
