"""Carry out a plan through Alembic's own machinery and the project's own env.py.

Each phase builds a ``RevisionMap`` that holds real ``Script`` objects only for the
revisions it runs and header-only ``Revision`` placeholders for the rest of the graph:
Alembic imports nothing else, which is what makes a switch on a long history fast. The
scripts are compiled from their text here (never from ``__pycache__``), so an edited or
materialised script cannot be shadowed by stale bytecode of the same size and second.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import types
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast

from branchmig.databases import AlembicEnv, Database, DatabaseState
from branchmig.errors import BranchmigError, ConfigError, DatabaseError, first_line
from branchmig.graph import Graph
from branchmig.project import Project

Direction = Literal["upgrade", "downgrade"]


class StepFailed(DatabaseError):
    """A migration raised ``cause`` (its first line); ``completed`` is what ran before."""

    def __init__(
        self, *, revision: str, direction: Direction, completed: tuple[str, ...], cause: str
    ) -> None:
        super().__init__(revision, direction, completed, cause)
        self.revision = revision
        self.direction = direction
        self.completed = completed
        self.cause = cause

    def __str__(self) -> str:
        return f"{self.direction.capitalize()} of '{self.revision}' failed: {self.cause}"

    def facts(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "direction": self.direction,
            "completed": list(self.completed),
            "failure": self.cause,
        }


_loading: threading.Thread | None = None

# The app ``flask`` itself loaded, when branchmig runs as ``flask branchmig``: used as it
# is, instead of finding one from FLASK_APP.
_given_flask_app: Any = None


def use_flask_app(app: Any) -> None:
    """Run Flask-Migrate projects with ``app`` (the one ``flask`` loaded)."""
    global _given_flask_app
    _given_flask_app = app


def start_loading_alembic() -> None:
    """Import Alembic (and SQLAlchemy under it) on a thread while the caller reads git.
    The import is most of a switch's time, and the git processes the caller waits for
    meanwhile run on the other core. ``alembic_env`` waits for it to finish, so the
    project's own code (env.py, a Flask app) is only ever imported on the main thread."""
    global _loading
    if _loading is None and "alembic.runtime.environment" not in sys.modules:
        _loading = threading.Thread(
            target=_load_alembic, name="branchmig-load-alembic", daemon=True
        )
        _loading.start()


# Mako, which Alembic imports to write new scripts, loads Pygments at import time to colour
# its HTML error pages (~30 ms here). Nothing renders such a page while migrations run, so
# that plugin is left out while Alembic loads, and Mako falls back to plain error pages.
_SKIPPED_WHILE_LOADING = "mako.ext.pygmentplugin"


def _load_alembic() -> None:
    skip = _SKIPPED_WHILE_LOADING not in sys.modules
    if skip:
        sys.modules[_SKIPPED_WHILE_LOADING] = None  # type: ignore[assignment]
    try:
        import alembic.config
        import alembic.runtime.environment
        import alembic.script  # noqa: F401
    except Exception:  # noqa: BLE001, S110 - the import in alembic_env reports any failure
        pass
    finally:
        if skip and sys.modules.get(_SKIPPED_WHILE_LOADING, ...) is None:
            del sys.modules[_SKIPPED_WHILE_LOADING]  # importable again, for anyone


@contextlib.contextmanager
def alembic_env(project: Project) -> Iterator[AlembicEnv]:
    """Open the project as ``alembic`` or ``flask db`` would.

    Alembic's own INFO lines ("Context impl SQLiteImpl.", "Running upgrade a -> b") are
    left out unless ``alembic_log`` is set: branchmig names each step itself, and runs
    env.py more than once. So are the "Migrating database <default>" lines of
    Flask-Migrate's multidb env.py, which branchmig names too. The filters sit on the
    loggers, which env.py's ``fileConfig`` leaves alone; nothing else the project logs is
    touched."""
    if _loading is not None:
        _loading.join()
    sys.dont_write_bytecode = True
    cwd = os.getcwd()
    os.chdir(project.repo_root)  # env.py and relative sqlite URLs expect the project root
    added = str(project.repo_root)
    sys.path.insert(0, added)
    import logging  # Alembic imports it anyway: only its fast callers should not

    def warnings_only(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING

    def not_naming_the_database(record: logging.LogRecord) -> bool:
        return not (
            record.levelno < logging.WARNING and str(record.msg).startswith("Migrating database ")
        )

    chatty = logging.getLogger("alembic.runtime.migration")
    multidb = logging.getLogger("alembic.env")
    if not project.settings.alembic_log:
        chatty.addFilter(warnings_only)
        multidb.addFilter(not_naming_the_database)
    try:
        if project.kind == "flask":
            with _flask_env(project) as env:
                yield env
        else:
            from alembic.config import Config

            # As the ``alembic`` command builds it: the ini (when there is one) and
            # pyproject.toml's [tool.alembic], the ini's option winning over the toml's.
            ini = project.config_path
            cfg = Config(
                str(ini) if ini.is_file() else None,
                toml_file=None if project.toml_path is None else str(project.toml_path),
                ini_section=project.settings.ini_section,
            )
            yield AlembicEnv(project, cfg)
    finally:
        chatty.removeFilter(warnings_only)
        multidb.removeFilter(not_naming_the_database)
        os.chdir(cwd)
        with contextlib.suppress(ValueError):
            sys.path.remove(added)


@contextlib.contextmanager
def _flask_env(project: Project) -> Iterator[AlembicEnv]:
    try:
        from flask.cli import ScriptInfo, load_dotenv
    except ImportError as err:
        raise ConfigError(
            "This is a Flask-Migrate project but Flask is not installed "
            "in this environment (pip install 'branchmig[flask]')"
        ) from err
    app = _given_flask_app
    if app is None:
        app = _load_flask_app(project, ScriptInfo, load_dotenv)
    migrate = app.extensions.get("migrate")
    if migrate is None:
        raise ConfigError("The Flask app has no Flask-Migrate extension (Migrate(app, db))")
    with app.app_context():
        cfg = migrate.migrate.get_config(str(project.flask_directory))
        env = AlembicEnv(project, cfg, app)
        try:
            yield env
        finally:
            env.dispose_engines()


def _load_flask_app(project: Project, script_info: Any, load_dotenv: Any) -> Any:
    """The app as ``flask`` finds it: .flaskenv and .env, then FLASK_APP (or the
    ``flask_app`` setting), else app.py or wsgi.py."""
    load_dotenv(str(project.repo_root / ".flaskenv"))
    load_dotenv(str(project.repo_root / ".env"))
    app_path = project.settings.flask_app or os.environ.get("FLASK_APP")
    try:
        return script_info(app_import_path=app_path).load_app()
    except Exception as err:  # noqa: BLE001 - flask raises NoAppException and import errors
        if not app_path:
            raise ConfigError(
                f"Cannot find the Flask app: FLASK_APP is not set and '{project.repo_root}' "
                "has no app.py or wsgi.py; set FLASK_APP, put FLASK_APP=... in .flaskenv, "
                "or set flask_app in [tool.branchmig]"
            ) from err
        raise ConfigError(
            f"Cannot load the Flask app {app_path!r}: {_app_failure(err)}; "
            "check FLASK_APP (or flask_app in [tool.branchmig])"
        ) from err


def _app_failure(err: BaseException) -> str:
    """What went wrong loading the app, in one line. Flask's NoAppException carries the
    import's traceback as text ("While importing 'app', an ImportError was raised:" and the
    traceback): its last line is the error, and its last frame says where."""
    text = str(err)
    if "Traceback" not in text:
        return first_line(err)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    frames = [ln for ln in lines if ln.startswith('File "')]
    where = ""
    if frames:
        match = re.match(r'File "(?P<file>[^"]+)", line (?P<line>\d+)', frames[-1])
        if match:
            where = f" ({os.path.basename(match['file'])}, line {match['line']})"
    return f"{lines[0].rstrip(':')}: {lines[-1]}{where}"


def _run_env(env: AlembicEnv, script: Any, fn: Callable[[Any, Any], Any], **kw: Any) -> None:
    from alembic.runtime.environment import EnvironmentContext

    with EnvironmentContext(env.config, script, fn=fn, as_sql=False, **kw):
        script.run_env()


def _script_directory(env: AlembicEnv) -> Any:
    from alembic.script import ScriptDirectory

    try:
        return ScriptDirectory.from_config(env.config)
    except Exception as err:  # noqa: BLE001 - alembic.util.CommandError and OSError
        raise ConfigError(f"Alembic cannot open the scripts: {err}") from err


def read_database(env: AlembicEnv) -> DatabaseState:
    """The revisions in ``alembic_version`` of each database env.py migrates, read as
    ``alembic current`` does (without creating the table), and the URL it connects to."""
    script = _script_directory(env)
    seen: list[Database] = []
    engines: list[Any] = []

    def fn(rev: Any, context: Any) -> list[Any]:
        conn = context.connection
        engines.append(conn.engine)
        seen.append(
            Database(
                _engine_name(context),
                conn.engine.url.render_as_string(hide_password=False),
                tuple(context.get_current_heads()),
            )
        )
        return []

    try:
        _run_env(env, script, fn, dont_mutate=True)
    except Exception as err:  # noqa: BLE001 - env.py may raise anything on connect
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
    return DatabaseState(tuple(unique.values()))


def _engine_name(context: Any) -> str:
    """The database's name as Flask-Migrate's multidb env.py gives it: its upgrade token
    is "<name>_upgrades" ("_upgrades" for the default; plain Alembic's is "upgrades")."""
    token = str(context.opts.get("upgrade_token") or "upgrades")
    return token[: -len("_upgrades")] if token.endswith("_upgrades") else ""


def load_script_module(path: Path, text: bytes, rev_id: str) -> types.ModuleType:
    """The module of one script, compiled from ``text``: bytecode is never trusted."""
    module = types.ModuleType(f"branchmig_rev_{abs(hash((rev_id, text))):x}")
    module.__file__ = str(path)
    try:
        code = compile(text, str(path), "exec", dont_inherit=True)
        exec(code, module.__dict__)  # noqa: S102 - this is how Alembic loads a script too
    except Exception as err:  # noqa: BLE001 - a broken script is the user's to fix
        raise DatabaseError(f"Cannot load {path} (revision '{rev_id}'): {first_line(err)}") from err
    return module


@dataclass(frozen=True)
class Phase:
    """Revisions to run in one direction, with the graph Alembic sees for them (restricted
    to ``scope``) and the texts of their scripts (read when the phase starts, so the
    upgrade reads the tree after the checkout)."""

    direction: Direction
    revisions: Sequence[str]
    graph: Graph
    scope: Set[str]
    texts: Callable[[], Mapping[str, tuple[Path, bytes]]]
    start_heads: Sequence[str] | None = None


def run_phases(
    env: AlembicEnv,
    phases: Sequence[Phase],
    *,
    between: Callable[[], None] | None = None,
    on_step: Callable[[Direction, str], None] | None = None,
    on_start: Callable[[Direction, str], None] | None = None,
    on_database: Callable[[str], None] | None = None,
    expect: DatabaseState | None = None,
) -> None:
    """Run the phases in order in one run of env.py, calling ``between`` (the checkout)
    after the first, ``on_start`` before each step and ``on_step`` after it: one
    connection, and on a database with transactional DDL one
    transaction (unless env.py asks for one per migration), so a failing upgrade takes the
    revert back with it.

    A ``--multidb`` env.py runs the steps once per database, each in its own transaction,
    committed together at the end: ``on_database`` is called with each one's name,
    ``between`` only once (the downgrades of the later databases read the old scripts
    from their copies, not from the tree).

    ``expect``: the databases as branchmig remembers them, env.py not having been run to
    read them: before the first step, each connection env.py makes must be to one of
    them, at its revisions, else nothing runs (``DatabaseError``)."""
    if not any(phase.revisions for phase in phases):
        if between is not None:
            between()
        return
    from alembic.runtime.migration import MigrationStep

    script_dir = _script_directory(env)
    completed: list[str] = []
    current: dict[str, str] = {}
    prepared: dict[int, tuple[Any, dict[str, Any]]] = {}
    crossed: list[bool] = []

    def finish_current() -> None:
        if current:
            completed.append(current["rev"])
            if on_step:
                on_step(cast(Direction, current["direction"]), current["rev"])
            current.clear()

    def steps(rev: Any, context: Any) -> Iterator[Any]:
        if on_database is not None:
            on_database(_engine_name(context))
        for index, phase in enumerate(phases):
            if index and between is not None and not crossed:
                finish_current()
                between()
                crossed.append(True)
            if not phase.revisions:
                continue
            if index not in prepared:
                prepared[index] = _prepare(phase)
            revision_map, scripts = prepared[index]
            make = (
                MigrationStep.upgrade_from_script
                if phase.direction == "upgrade"
                else MigrationStep.downgrade_from_script
            )
            for rev_id in phase.revisions:
                finish_current()
                current.update(rev=rev_id, direction=phase.direction)
                if on_start:
                    on_start(phase.direction, rev_id)
                yield make(revision_map, scripts[rev_id])
        finish_current()

    engines: list[Any] = []

    def fn(rev: Any, context: Any) -> Iterator[Any]:
        engines.append(context.connection.engine)
        if expect is not None:
            _check_expected(context, expect)
        return steps(rev, context)

    try:
        _run_env(env, script_dir, fn)
    except BranchmigError:
        raise  # ours (the checkout, a script that does not load): already one line
    except Exception as err:  # noqa: BLE001 - the migration's own error is the message
        failed = current.get("rev", "")
        direction: Direction = "upgrade" if current.get("direction") == "upgrade" else ("downgrade")
        raise StepFailed(
            revision=failed, direction=direction, completed=tuple(completed), cause=first_line(err)
        ) from err
    finally:
        for engine in engines:
            engine.dispose()
        env.dispose_engines()


def _check_expected(context: Any, expect: DatabaseState) -> None:
    """The database env.py connected to is one ``expect`` names, at its revisions."""
    from branchmig.errors import NotAsRemembered
    from branchmig.snapshots.base import mask_url

    url = context.connection.engine.url.render_as_string(hide_password=False)
    known = {db.url: db for db in expect.databases}
    if url not in known:
        raise NotAsRemembered(
            f"env.py now connects to {mask_url(url)}, not to {mask_url(expect.url)} as when "
            "branchmig last ran it"
        )
    heads = tuple(context.get_current_heads())
    if sorted(heads) != sorted(known[url].heads):
        raise NotAsRemembered(
            f"{mask_url(url)} is at {', '.join(heads) or 'base'}, not at "
            f"{', '.join(known[url].heads) or 'base'} as branchmig left it"
        )


def _prepare(phase: Phase) -> tuple[Any, dict[str, Any]]:
    """The ``RevisionMap`` for a phase and the ``Script`` of each revision it runs.

    When the database is at ``start_heads`` and the phase is a straight line (one head
    throughout, no merges or dependencies), Alembic needs no ancestry to keep
    ``alembic_version`` right, so the map holds only the steps and their parents: on a
    long history that is most of a switch's time saved."""
    from alembic.script.base import Script
    from alembic.script.revision import Revision as AlembicRevision
    from alembic.script.revision import RevisionMap

    graph, scope, revisions = phase.graph, phase.scope, phase.revisions
    if phase.start_heads is not None and _is_straight(
        phase.direction, revisions, graph, phase.start_heads
    ):
        parents = {p for r in revisions for p in graph.revisions[r].down}
        scope = set(revisions) | parents
        graph = _truncated(graph, parents - set(revisions))
    texts = phase.texts()
    scripts: dict[str, Any] = {}
    for rev_id in revisions:
        path, text = texts[rev_id]
        scripts[rev_id] = Script(load_script_module(path, text, rev_id), rev_id, str(path))

    def generate() -> Iterator[Any]:
        for rev_id in scope:
            if rev_id in scripts:
                yield scripts[rev_id]
                continue
            rev = graph.revisions[rev_id]
            yield AlembicRevision(
                rev.id,
                rev.down or None,
                branch_labels=rev.labels or None,
                dependencies=rev.depends_on or None,
            )

    revision_map = RevisionMap(generate)
    try:
        revision_map.heads  # noqa: B018 - builds the map: resolves dependencies
    except Exception as err:  # noqa: BLE001 - alembic's RevisionError family
        raise DatabaseError(f"Alembic rejects the revision graph: {first_line(err)}") from err
    return revision_map, scripts


def _is_straight(
    direction: Direction, revisions: Sequence[str], graph: Graph, start_heads: Sequence[str]
) -> bool:
    heads = set(start_heads)
    for rev_id in revisions:
        rev = graph.revisions[rev_id]
        if len(rev.down) > 1 or rev.depends_on:
            return False
        if direction == "downgrade":
            if heads != {rev_id}:
                return False
            heads = set(rev.down)
        else:
            if heads != set(rev.down):
                return False
            heads = {rev_id}
    return True


def _truncated(graph: Graph, boundary: set[str]) -> Graph:
    """``graph`` with the ``boundary`` revisions cut from their parents (bases)."""

    revisions = dict(graph.revisions)
    for rev_id in boundary:
        revisions[rev_id] = replace(revisions[rev_id], down=(), depends_on=(), labels=())
    return Graph(revisions, graph.problems)


# -- verify: a Flask app's engines pointed elsewhere, the models compared --------------


def _flask_sqlalchemy(env: AlembicEnv) -> tuple[Any, Any]:
    """The app and its Flask-SQLAlchemy 3 extension, whose engines env.py migrates."""
    app = env.flask_app
    db = getattr(app.extensions.get("migrate"), "db", None)
    if db is None or not isinstance(getattr(db, "_app_engines", None), Mapping):
        raise ConfigError(
            "branchmig can point a Flask-Migrate project at scratch databases only through "
            "Flask-SQLAlchemy 3's engines; upgrade it (pip install 'flask-sqlalchemy>=3')"
        )
    return app, db


def flask_engine_urls(env: AlembicEnv) -> dict[str, str]:
    """The URL of each engine of the app's Flask-SQLAlchemy ("" for the default one, else
    the bind's name), as the app made them: read from the engines, never connected."""
    app, db = _flask_sqlalchemy(env)
    return {
        key or "": engine.url.render_as_string(hide_password=False)
        for key, engine in db._app_engines[app].items()
    }


@contextlib.contextmanager
def flask_engines_at(env: AlembicEnv, urls: Mapping[str, str]) -> Iterator[None]:
    """The app's engines (by bind name, "" for the default) made anew on ``urls``, the
    app's own put back afterwards. Flask-SQLAlchemy 3 makes its engines once, in
    ``init_app``, and env.py takes them from ``db.engines``: changing the app's config
    afterwards changes nothing, so each engine is replaced in the extension's own table,
    made as ``init_app`` makes it (the extension's and the app's engine options, its driver
    defaults, its ``_make_engine``), with only the URL changed. The live databases' engines
    are disposed and never connect meanwhile."""
    app, db = _flask_sqlalchemy(env)
    engines = db._app_engines[app]
    originals = dict(engines)
    try:
        for name, url in urls.items():
            key = name or None
            if key not in originals:
                continue
            options = _flask_engine_options(db, app, key)
            options["url"] = url
            db._apply_driver_defaults(options, app)
            originals[key].dispose()
            engines[key] = db._make_engine(key, options, app)
        yield
    finally:
        for key, engine in originals.items():
            if engines.get(key) is not engine:
                engines[key].dispose()
                engines[key] = engine


def _flask_engine_options(db: Any, app: Any, key: str | None) -> dict[str, Any]:
    """The options ``init_app`` gave the engine of bind ``key``, without its URL."""
    options: dict[str, Any] = dict(db._engine_options)
    bind = app.config.get("SQLALCHEMY_BINDS", {}).get(key)
    if isinstance(bind, Mapping):
        options.update(bind)
    if key is None:
        options.update(app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}))
    echo = app.config.get("SQLALCHEMY_ECHO", False)
    options.setdefault("echo", echo)
    options.setdefault("echo_pool", echo)
    options.pop("url", None)
    return options


def compare_models(env: AlembicEnv) -> list[tuple[str, list[Any]]] | None:
    """What autogenerate finds between env.py's ``target_metadata`` and each database
    env.py connects to, by database name, as ``alembic check`` compares them (env.py's own
    ``include_object``, ``compare_type`` and the like apply); None when env.py gives no
    ``target_metadata``."""
    from alembic.autogenerate import compare_metadata

    script = _script_directory(env)
    found: list[tuple[str, list[Any]]] = []
    without: list[str] = []
    engines: list[Any] = []

    def fn(rev: Any, context: Any) -> list[Any]:
        engines.append(context.connection.engine)
        metadata = context.opts.get("target_metadata")
        if metadata is None:
            without.append(_engine_name(context))
        else:
            found.append((_engine_name(context), list(compare_metadata(context, metadata))))
        return []

    try:
        _run_env(env, script, fn, dont_mutate=True)
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
