"""What describes the project's databases and its Alembic configuration: plain values,
read by the hook's restore (which loads no Alembic) as by ``runner``, which fills them."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from typing import Any

from branchmig.project import Project


@dataclass(frozen=True)
class Database:
    """One database env.py migrates: ``name`` is "" for the default one, the bind's name
    for the others of a Flask-Migrate ``--multidb`` project."""

    name: str
    url: str = field(repr=False)  # as env.py connects, password included: mask it
    heads: tuple[str, ...]

    @property
    def label(self) -> str:
        return self.name or "<default>"


@dataclass(frozen=True)
class DatabaseState:
    """Every database of the project, the default one first. A ``--multidb`` project
    migrates each of them with the same scripts, so they move together: one plan, one
    snapshot holding a copy of each."""

    databases: tuple[Database, ...]
    # The one database env.py names is not on its server (dropped): only its snapshots
    # can be listed and restored.
    missing: bool = False
    # The environment variables env.py read to give these (remembered.reading_environ);
    # None when it was not watched.
    environ: tuple[str, ...] | None = field(default=None, compare=False)

    @classmethod
    def single(cls, url: str, heads: tuple[str, ...]) -> DatabaseState:
        return cls((Database("", url, heads),))

    @property
    def url(self) -> str:
        return self.databases[0].url

    @property
    def heads(self) -> tuple[str, ...]:
        return self.databases[0].heads

    @property
    def multi(self) -> bool:
        return len(self.databases) > 1

    @property
    def urls(self) -> tuple[tuple[str, str], ...]:
        return tuple((db.name, db.url) for db in self.databases)

    @property
    def on_sqlite(self) -> bool:
        return any(db.url.startswith("sqlite") for db in self.databases)

    def with_heads(self, heads: tuple[str, ...]) -> DatabaseState:
        return DatabaseState(tuple(replace(db, heads=heads) for db in self.databases))

    def disagreement(self) -> str | None:
        """A sentence when the databases are at different revisions (one plan cannot
        move them all)."""
        if len({db.heads for db in self.databases}) <= 1:
            return None
        where = "; ".join(f"{db.label} at {', '.join(db.heads) or 'base'}" for db in self.databases)
        return f"the project's databases are at different revisions ({where})"


@dataclass
class AlembicEnv:
    """The project's Alembic configuration, inside the Flask app context when the
    project is a Flask-Migrate one."""

    project: Project
    config: Any  # alembic.config.Config
    flask_app: Any = None

    def dispose_engines(self) -> None:
        """Close pooled connections (Flask-SQLAlchemy keeps some), so a snapshot can
        rename or copy the database."""
        if self.flask_app is None:
            return
        migrate = self.flask_app.extensions.get("migrate")
        db = getattr(migrate, "db", None)
        if db is not None:
            with contextlib.suppress(Exception):
                for engine in getattr(db, "engines", {}).values():
                    engine.dispose()
