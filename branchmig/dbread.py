"""What a database holds, read through env.py without changing it: its revisions (as
``alembic current`` reads them), whether a server lacks it, what SQLite says pins its
columns, and what autogenerate finds between the models and it."""

from __future__ import annotations

from typing import Any

from branchmig.alembicenv import (
    EnvFailed,
    engine_name,
    from_the_database,
    run_env,
    script_directory,
)
from branchmig.databases import AlembicEnv, Database, DatabaseState
from branchmig.errors import BranchmigError, DatabaseError, first_line
from branchmig.remembered import reading_environ


def read_database(env: AlembicEnv) -> DatabaseState:
    """The revisions in ``alembic_version`` of each database env.py migrates, read as
    ``alembic current`` does (without creating the table), and the URL it connects to."""
    script = script_directory(env)
    seen: list[Database] = []
    engines: list[Any] = []

    def fn(rev: Any, context: Any) -> list[Any]:
        conn = context.connection
        engines.append(conn.engine)
        seen.append(
            Database(
                engine_name(context),
                conn.engine.url.render_as_string(hide_password=False),
                tuple(context.get_current_heads()),
            )
        )
        return []

    try:
        with reading_environ() as read:
            run_env(env, script, fn, dont_mutate=True)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - env.py may raise anything
        if not from_the_database(err):
            raise EnvFailed.of(env.project, err) from err
        raise DatabaseError(
            f"Cannot read the database's revisions through env.py: "
            f"{first_line(err)}; check the database URL and that the "
            "database is reachable, then run: branchmig status"
        ) from err
    finally:
        for engine in engines:
            engine.dispose()
        env.dispose_engines()
    if not seen:
        raise DatabaseError("env.py did not run the migration context (is it offline-only?)")
    unique: dict[str, Database] = {}
    for db in seen:  # two binds on one URL are one database
        unique.setdefault(db.url, db)
    return DatabaseState(tuple(unique.values()), environ=tuple(sorted(read)))


def sqlite_constrained_columns(url: str) -> dict[str, list[str]]:
    """What a SQLite database says makes its columns undroppable in place ('table.column'
    -> "indexed (ix_name)", "UNIQUE", "the PRIMARY KEY", "in a FOREIGN KEY constraint"),
    read-only; empty when it cannot be read (then nothing is warned about)."""
    import sqlite3
    from urllib.parse import quote

    from sqlalchemy.engine import make_url

    path = make_url(url).database or ""
    if not path or path == ":memory:" or path.startswith("file:"):
        return {}
    found: dict[str, list[str]] = {}

    def mark(table: str, column: str, what: str) -> None:
        found.setdefault(f"{table}.{column}", []).append(what)

    try:
        conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True)
    except sqlite3.Error:
        return {}
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        for table in tables:
            quoted = '"' + table.replace('"', '""') + '"'
            for _, name, _, origin, _ in conn.execute(f"PRAGMA index_list({quoted})"):
                what = {"pk": "the PRIMARY KEY", "u": "UNIQUE"}.get(origin, f"indexed ({name})")
                iname = '"' + name.replace('"', '""') + '"'
                for row in conn.execute(f"PRAGMA index_info({iname})"):
                    if row[2] is not None:
                        mark(table, row[2], what)
            for row in conn.execute(f"PRAGMA table_info({quoted})"):
                if row[5]:
                    mark(table, row[1], "the PRIMARY KEY")
            for row in conn.execute(f"PRAGMA foreign_key_list({quoted})"):
                mark(table, row[3], "in a FOREIGN KEY constraint")
    except sqlite3.Error:
        return {}
    finally:
        conn.close()
    return {key: list(dict.fromkeys(what)) for key, what in found.items()}


def missing_database(env: AlembicEnv) -> DatabaseState | None:
    """The database env.py names (``sqlalchemy.url``, which Flask-Migrate's env.py sets
    too) when its server answers without it: dropped, at no revision. None when that is
    not what is wrong (SQLite, the server unreachable, the database there)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    try:
        url = make_url(env.config.get_main_option("sqlalchemy.url") or "")
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: not this case
        return None
    dialect = url.get_backend_name()
    if not url.database or dialect not in ("postgresql", "mysql", "mariadb"):
        return None
    # (``set(database=None)`` would keep the name: None there means "unchanged".)
    on_server = url._replace(database="postgres" if dialect == "postgresql" else None)
    query = (
        "SELECT 1 FROM pg_database WHERE datname = :name"
        if dialect == "postgresql"
        else "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = :name"
    )
    engine = create_engine(on_server, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            there = conn.execute(text(query), {"name": url.database}).first() is not None
    except Exception:  # noqa: BLE001 - the server does not answer: the first error stands
        return None
    finally:
        engine.dispose()
    if there:
        return None
    return DatabaseState((Database("", url.render_as_string(hide_password=False), ()),), True)


def compare_models(env: AlembicEnv) -> list[tuple[str, list[Any]]] | None:
    """What autogenerate finds between env.py's ``target_metadata`` and each database
    env.py connects to, by database name, as ``alembic check`` compares them (env.py's own
    ``include_object``, ``compare_type`` and the like apply); None when env.py gives no
    ``target_metadata``."""
    from alembic.autogenerate import compare_metadata

    script = script_directory(env)
    found: list[tuple[str, list[Any]]] = []
    without: list[str] = []
    engines: list[Any] = []

    def fn(rev: Any, context: Any) -> list[Any]:
        engines.append(context.connection.engine)
        metadata = context.opts.get("target_metadata")
        if metadata is None:
            without.append(engine_name(context))
        else:
            found.append((engine_name(context), list(compare_metadata(context, metadata))))
        return []

    try:
        run_env(env, script, fn, dont_mutate=True)
    except BranchmigError:
        raise
    except Exception as err:  # noqa: BLE001 - env.py or the models may raise anything
        raise DatabaseError(
            f"Cannot compare the models with the database through env.py: {first_line(err)}"
        ) from err
    finally:
        for engine in engines:
            engine.dispose()
        env.dispose_engines()
    return None if without and not found else found
