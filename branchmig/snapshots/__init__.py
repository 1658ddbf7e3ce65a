"""Snapshots of the live database, one backend per kind of database.

Importing this package is cheap: SQLAlchemy and the drivers load only when a backend is made.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from branchmig.errors import SnapshotError
from branchmig.snapshots.base import (
    Progress,
    SessionsBlockingError,
    SnapshotBackend,
    StoredSnapshot,
)
from branchmig.snapshots.together import Together
from branchmig.urls import dialect_of, mask_url

if TYPE_CHECKING:
    from branchmig.snapshots.mysql import MySQLBackend
    from branchmig.snapshots.postgresql import PostgreSQLBackend
    from branchmig.snapshots.sqlite import SQLiteBackend

__all__ = [
    "SessionsBlockingError",
    "SnapshotBackend",
    "StoredSnapshot",
    "backend_for",
    "backend_for_url",
]


def backend_for_url(
    url: str,
    *,
    store_dir: Path,
    terminate_connections: bool = False,
    progress: Progress | None = None,
) -> SnapshotBackend:
    """The snapshot backend for the database at ``url``, by the URL's SQLAlchemy dialect.

    ``store_dir`` is a private folder for the files snapshots need (SQLite copies, dumps).
    ``terminate_connections`` lets PostgreSQL and MySQL end other sessions that block a
    snapshot instead of failing. ``progress`` receives a line for each slow operation.
    """
    dialect = dialect_of(url)
    if dialect == "sqlite":
        return _sqlite_backend()(url, store_dir=store_dir, progress=progress)
    if dialect in ("postgresql", "postgres", "mysql", "mariadb"):
        return _server_backend(dialect)(
            url,
            store_dir=store_dir,
            terminate_connections=terminate_connections,
            progress=progress,
        )
    shown = dialect or mask_url(url)
    raise SnapshotError(
        f"Snapshots are not supported for the database dialect {shown!r}: branchmig has "
        "backends for sqlite, postgresql and mysql/mariadb. Run the switch with --no-snapshot."
    )


def backend_for(
    urls: Sequence[tuple[str, str]],
    *,
    store_dir: Path,
    terminate_connections: bool = False,
    progress: Progress | None = None,
) -> SnapshotBackend:
    """The snapshot backend of the project's databases, given as (name, URL) pairs with
    the default one first: its own backend for one, all of them as one for several."""
    made = [
        (
            name,
            backend_for_url(
                url,
                store_dir=store_dir,
                terminate_connections=terminate_connections,
                progress=progress,
            ),
        )
        for name, url in urls
    ]
    if len(made) == 1:
        return made[0][1]
    return Together(made)


def _sqlite_backend() -> type[SQLiteBackend]:
    # A door: a process loads the backends of the databases it meets (~2 ms with sqlite3).
    from branchmig.snapshots.sqlite import SQLiteBackend

    return SQLiteBackend


def _server_backend(dialect: str) -> type[PostgreSQLBackend | MySQLBackend]:
    """The backend class of a database server, with its driver imported (here, so that a
    missing one is said before anything starts)."""
    # A door: a process loads the backends of the databases it meets (~3 ms without driver).
    postgres = dialect in ("postgresql", "postgres")
    driver, extra = ("psycopg", "postgres") if postgres else ("pymysql", "mysql")
    try:
        importlib.import_module(driver)
    except ImportError as err:
        raise SnapshotError(
            f"Snapshots of this database need the {driver} package ({err}). "
            f"Run: pip install 'branchmig[{extra}]'"
        ) from err
    if postgres:
        from branchmig.snapshots.postgresql import PostgreSQLBackend

        return PostgreSQLBackend
    from branchmig.snapshots.mysql import MySQLBackend

    return MySQLBackend
