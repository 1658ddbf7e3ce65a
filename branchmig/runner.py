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
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast

from branchmig.commitcode import CodeAt, importable
from branchmig.databases import AlembicEnv, Database, DatabaseState
from branchmig.errors import (
    BranchmigError,
    ConfigError,
    DatabaseError,
    ScriptLoadError,
    first_line,
)
from branchmig.graph import Graph
from branchmig.project import Project
from branchmig.remembered import reading_environ

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
    # As `alembic` run from the config's folder (`flask db` from the app's): env.py, the
    # app's settings, relative sqlite URLs and `prepend_sys_path = .` all resolve from it.
    os.chdir(project.run_dir)
    path = list(sys.path)
    sys.path.insert(0, str(project.run_dir))
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
            with _their_warnings(shown=project.settings.alembic_log), _flask_env(project) as env:
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
            with _their_warnings(shown=project.settings.alembic_log):
                yield AlembicEnv(project, cfg)
    finally:
        chatty.removeFilter(warnings_only)
        multidb.removeFilter(not_naming_the_database)
        os.chdir(cwd)
        sys.path[:] = path  # Alembic prepends prepend_sys_path's entries, relative ones too


@contextlib.contextmanager
def _their_warnings(*, shown: bool) -> Iterator[None]:
    """Python warnings raised while the project's app, env.py, its scripts, Alembic or
    SQLAlchemy run (Alembic's "autoincrement ... only make sense for MySQL", an async
    engine's "coroutine ... was never awaited", SAWarnings) are not branchmig's words:
    they are left out unless ``shown`` (``-v``), when Python shows them as ``alembic``
    would. Only for as long as the project is open: the filters are put back after."""
    if shown:
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def _flask_env(project: Project) -> Iterator[AlembicEnv]:
    why = f"'{_shown(project, project.env_py)}' takes its engine from Flask-Migrate"
    try:
        from flask.cli import ScriptInfo, load_dotenv
    except ImportError as err:
        raise ConfigError(
            f"{why}, but Flask is not installed in this environment "
            "(pip install 'branchmig[flask]')"
        ) from err
    app = _given_flask_app
    if app is None:
        app = _load_flask_app(project, ScriptInfo, load_dotenv)
    migrate = app.extensions.get("migrate")
    if migrate is None:
        raise ConfigError(
            f"{why} (current_app.extensions['migrate']), but the Flask app "
            f"'{app.import_name}' has none: call Migrate(app, db) in it, or point "
            "flask_app in [tool.branchmig] at the app that does"
        )
    with app.app_context():
        cfg = migrate.migrate.get_config(str(project.flask_directory))
        env = AlembicEnv(project, cfg, app)
        try:
            yield env
        finally:
            env.dispose_engines()


class AppExited(BranchmigError):
    """The Flask app's factory (or module) called ``sys.exit`` while branchmig loaded it:
    ``where`` names the function and file, ``status`` its exit status."""

    def __init__(self, *, app_path: str | None, where: str, status: int | str) -> None:
        super().__init__(app_path, where, status)
        self.app_path = app_path
        self.where = where
        self.status = status

    def __str__(self) -> str:
        named = (
            f"FLASK_APP={self.app_path!r}" if self.app_path else "FLASK_APP unset: app.py, wsgi.py"
        )
        return (
            f"The Flask app's {self.where} exited with status {self.status} while branchmig "
            f"loaded it ({named}); a factory that migrates on start "
            "(flask_migrate.upgrade()) exits when its database is at a revision it does not "
            "know. Point flask_app in [tool.branchmig] at a factory that does not migrate "
            "on start, then run: branchmig status"
        )

    def facts(self) -> dict[str, Any]:
        return {"flask_app": self.app_path, "where": self.where, "status": self.status}


def load_flask_app(load: Callable[[], Any], *, app_path: str | None, root: Path) -> Any:
    """``load()`` (Flask's ``ScriptInfo.load_app``), an app that exits turned into
    ``AppExited``."""
    try:
        return load()
    except SystemExit as err:
        raise AppExited(
            app_path=app_path, where=_exiting_frame(err, root), status=_exit_status(err)
        ) from None


def _exit_status(err: SystemExit) -> int | str:
    if err.code is None:
        return 0
    return err.code if isinstance(err.code, int) else f"1 ({err.code})"


def _exiting_frame(err: BaseException, root: Path, *, skip: Path | None = None) -> str:
    """The project's own function that was running when ``err`` was raised, as
    "factory 'create_app' (app/__init__.py, line 12)": the first of the project's frames
    (``skip``'s aside) that is not a module's top level, else the last of them."""
    import traceback

    own = []
    for frame in traceback.extract_tb(err.__traceback__):
        path = Path(frame.filename)
        if path == skip or {"site-packages", "dist-packages"} & set(path.parts):
            continue
        if path.is_relative_to(root):
            own.append(frame)
    if not own:
        return "factory"
    chosen = next((f for f in own if f.name != "<module>"), own[-1])
    where = f"{Path(chosen.filename).relative_to(root).as_posix()}, line {chosen.lineno}"
    if chosen.name == "<module>":
        return f"module ({where})"
    return f"factory '{chosen.name}' ({where})"


def _load_flask_app(project: Project, script_info: Any, load_dotenv: Any) -> Any:
    """The app as ``flask`` finds it, run from ``project.run_dir``: .flaskenv and .env,
    then FLASK_APP (or the ``flask_app`` setting), else app.py or wsgi.py."""
    load_dotenv(str(project.run_dir / ".flaskenv"))
    load_dotenv(str(project.run_dir / ".env"))
    app_path = project.settings.flask_app or os.environ.get("FLASK_APP")
    try:
        return load_flask_app(
            script_info(app_import_path=app_path).load_app,
            app_path=app_path,
            root=project.repo_root,
        )
    except AppExited:
        raise
    except Exception as err:  # noqa: BLE001 - flask raises NoAppException and import errors
        if not app_path:
            raise ConfigError(
                f"Cannot find the Flask app: FLASK_APP is not set and '{project.run_dir}' "
                "has no app.py or wsgi.py; set FLASK_APP, put FLASK_APP=... in .flaskenv, "
                "or set flask_app in [tool.branchmig]"
            ) from err
        raise ConfigError(
            f"Cannot load the Flask app {app_path!r}: {_app_failure(err)}; "
            "check FLASK_APP (or flask_app in [tool.branchmig])"
        ) from err


def _shown(project: Project, path: Path) -> str:
    """``path`` relative to the repository's top, when it is inside."""
    try:
        return path.relative_to(project.repo_root).as_posix()
    except ValueError:
        return str(path)


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
        with reading_environ() as read:
            _run_env(env, script, fn, dont_mutate=True)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - env.py may raise anything
        if not _from_the_database(err):
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


class EnvFailed(DatabaseError):
    """env.py raised (or exited) before it reached the database: its own code or what it
    reads (the app's settings, a .env file), not the database URL."""

    def __init__(
        self, *, env_py: str, cwd: str, config: str, cause: str, flask: bool, hint: str = ""
    ) -> None:
        super().__init__(env_py, cwd, cause)
        self.env_py = env_py
        self.cwd = cwd
        self.config = config
        self.cause = cause
        self.flask = flask
        self.hint = hint

    @classmethod
    def of(cls, project: Project, err: BaseException) -> EnvFailed:
        cause = first_line(err)
        if isinstance(err, SystemExit):  # an app factory env.py calls, migrating on start
            where = _exiting_frame(err, project.repo_root, skip=project.env_py)
            cause = f"SystemExit: its {where} exited with status {_exit_status(err)}"
        hint = ""
        if project.kind == "alembic" and "application context" in cause:
            hint = (
                "; it needs a Flask app, and branchmig runs env.py under Flask-Migrate only "
                "when the env.py beside the alembic.ini takes its engine from "
                "current_app.extensions['migrate']"
            )
        return cls(
            env_py=_shown(project, project.env_py),
            cwd=str(project.run_dir),
            config=_shown(project, project.config_path),
            cause=cause,
            flask=project.kind == "flask",
            hint=hint,
        )

    def __str__(self) -> str:
        folder = (
            "the folder flask db is run from"
            if self.flask
            else f"the folder alembic is run from for '{self.config}'"
        )
        return (
            f"env.py ('{self.env_py}') failed while loading, before it reached the database: "
            f"{self.cause} (it ran in '{self.cwd}', {folder}){self.hint}; fix what it reads "
            "(the app's settings, a .env file), then run: branchmig status"
        )

    def facts(self) -> dict[str, Any]:
        return {"env_py": self.env_py, "cwd": self.cwd, "failure": self.cause}


def _from_the_database(err: BaseException) -> bool:
    """Whether ``err`` came from SQLAlchemy or a driver (a URL, a connection), rather than
    from env.py's own code or what it imports: SQLAlchemy's code is on its traceback."""
    tb = err.__traceback__
    while tb is not None:
        name = str(tb.tb_frame.f_globals.get("__name__", ""))
        if name == "sqlalchemy" or name.startswith("sqlalchemy."):
            return True
        tb = tb.tb_next
    return False


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


def _engine_name(context: Any) -> str:
    """The database's name as Flask-Migrate's multidb env.py gives it: its upgrade token
    is "<name>_upgrades" ("_upgrades" for the default; plain Alembic's is "upgrades")."""
    token = str(context.opts.get("upgrade_token") or "upgrades")
    return token[: -len("_upgrades")] if token.endswith("_upgrades") else ""


def load_script_module(
    path: Path, text: bytes, rev_id: str, shown: str | None = None
) -> types.ModuleType:
    """The module of one script, compiled from ``text``: bytecode is never trusted.
    ``shown``: how a failure names the script (its path in the repository, not the temp
    file an old script was written to)."""
    module = types.ModuleType(f"branchmig_rev_{abs(hash((rev_id, text))):x}")
    module.__file__ = str(path)
    try:
        code = compile(text, str(path), "exec", dont_inherit=True)
        exec(code, module.__dict__)  # noqa: S102 - this is how Alembic loads a script too
    except Exception as err:  # noqa: BLE001 - a broken script is the user's to fix
        raise ScriptLoadError(
            f"Cannot load {shown or path} (revision '{rev_id}'): {first_line(err)}",
            path=shown or str(path),
            revision=rev_id,
            cause=first_line(err),
        ) from err
    return module


@dataclass(frozen=True)
class Phase:
    """Revisions to run in one direction, with the graph Alembic sees for them (restricted
    to ``scope``) and the texts of their scripts (read when the phase starts, so the
    upgrade reads the tree after the checkout). ``code``: the commit whose scripts these
    are, when it is not the working tree's: the modules they import from the project
    are importable as they were there while the phase runs."""

    direction: Direction
    revisions: Sequence[str]
    graph: Graph
    scope: Set[str]
    texts: Callable[[], Mapping[str, tuple[Path, bytes]]]
    start_heads: Sequence[str] | None = None
    code: CodeAt | None = None


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
    # The code of the phase running: entered when its scripts load, left before the
    # checkout and at the end (the steps run between the generator's yields).
    code = contextlib.ExitStack()
    entered: list[CodeAt | None] = []  # the code entered, while it is

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
                code.close()
                entered.clear()
                between()
                crossed.append(True)
            if not phase.revisions:
                continue
            finish_current()
            if entered != [phase.code]:  # phases of one commit share its code
                code.close()
                code.enter_context(importable(phase.code))
                entered[:] = [phase.code]
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
        code.close()
        entered.clear()

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
    except (Exception, SystemExit) as err:  # noqa: BLE001 - the migration's own error is the message
        if not engines and not _from_the_database(err):
            raise EnvFailed.of(env.project, err) from err  # before the first step
        failed = current.get("rev", "")
        direction: Direction = "upgrade" if current.get("direction") == "upgrade" else ("downgrade")
        raise StepFailed(
            revision=failed, direction=direction, completed=tuple(completed), cause=first_line(err)
        ) from err
    finally:
        code.close()
        for engine in engines:
            engine.dispose()
        env.dispose_engines()


def _check_expected(context: Any, expect: DatabaseState) -> None:
    """The database env.py connected to is one ``expect`` names, at its revisions."""
    from branchmig.errors import NotAsRemembered
    from branchmig.urls import mask_url

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
        shown = graph.revisions[rev_id].path if rev_id in graph.revisions else None
        module = load_script_module(path, text, rev_id, shown)
        scripts[rev_id] = Script(module, rev_id, str(path))

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
