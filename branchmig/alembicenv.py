"""Alembic loaded, and the project opened as ``alembic`` or ``flask db`` opens it: its
env.py run with a function of ours, and what env.py's own failures are told apart from the
database's."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from branchmig import mysqltls
from branchmig.databases import AlembicEnv
from branchmig.errors import ConfigError, DatabaseError, first_line
from branchmig.flaskapp import exit_status, exiting_frame, flask_env, relative_to_repo
from branchmig.project import Project

_loading: threading.Thread | None = None


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
            with _their_warnings(shown=project.settings.alembic_log), flask_env(project) as env:
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


def run_env(env: AlembicEnv, script: Any, fn: Callable[[Any, Any], Any], **kw: Any) -> None:
    from alembic.runtime.environment import EnvironmentContext

    mysqltls.share_in_engines()
    with EnvironmentContext(env.config, script, fn=fn, as_sql=False, **kw):
        script.run_env()


def script_directory(env: AlembicEnv) -> Any:
    from alembic.script import ScriptDirectory

    try:
        return ScriptDirectory.from_config(env.config)
    except Exception as err:  # noqa: BLE001 - alembic.util.CommandError and OSError
        raise ConfigError(f"Alembic cannot open the scripts: {err}") from err


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
            where = exiting_frame(err, project.repo_root, skip=project.env_py)
            cause = f"SystemExit: its {where} exited with status {exit_status(err)}"
        hint = ""
        if project.kind == "alembic" and "application context" in cause:
            hint = (
                "; it needs a Flask app, and branchmig runs env.py under Flask-Migrate only "
                "when the env.py beside the alembic.ini takes its engine from "
                "current_app.extensions['migrate']"
            )
        return cls(
            env_py=relative_to_repo(project, project.env_py),
            cwd=str(project.run_dir),
            config=relative_to_repo(project, project.config_path),
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


def from_the_database(err: BaseException) -> bool:
    """Whether ``err`` came from SQLAlchemy or a driver (a URL, a connection), rather than
    from env.py's own code or what it imports: SQLAlchemy's code is on its traceback."""
    tb = err.__traceback__
    while tb is not None:
        name = str(tb.tb_frame.f_globals.get("__name__", ""))
        if name == "sqlalchemy" or name.startswith("sqlalchemy."):
            return True
        tb = tb.tb_next
    return False


def engine_name(context: Any) -> str:
    """The database's name as Flask-Migrate's multidb env.py gives it: its upgrade token
    is "<name>_upgrades" ("_upgrades" for the default; plain Alembic's is "upgrades")."""
    token = str(context.opts.get("upgrade_token") or "upgrades")
    return token[: -len("_upgrades")] if token.endswith("_upgrades") else ""
