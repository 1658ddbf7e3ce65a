"""The Flask app a Flask-Migrate project migrates with: found and loaded as ``flask``
finds it (or the one ``flask`` gave, under ``flask branchmig``), an app that exits while
loading named, and its Flask-SQLAlchemy engines pointed at other databases for ``verify``."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from branchmig.databases import AlembicEnv
from branchmig.errors import BranchmigError, ConfigError, first_line
from branchmig.project import Project

# The app ``flask`` itself loaded, when branchmig runs as ``flask branchmig``: used as it
# is, instead of finding one from FLASK_APP.
_given_flask_app: Any = None


def use_flask_app(app: Any) -> None:
    """Run Flask-Migrate projects with ``app`` (the one ``flask`` loaded)."""
    global _given_flask_app
    _given_flask_app = app


@contextlib.contextmanager
def flask_env(project: Project) -> Iterator[AlembicEnv]:
    why = f"'{relative_to_repo(project, project.env_py)}' takes its engine from Flask-Migrate"
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
            app_path=app_path, where=exiting_frame(err, root), status=exit_status(err)
        ) from None


def exit_status(err: SystemExit) -> int | str:
    if err.code is None:
        return 0
    return err.code if isinstance(err.code, int) else f"1 ({err.code})"


def exiting_frame(err: BaseException, root: Path, *, skip: Path | None = None) -> str:
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


def relative_to_repo(project: Project, path: Path) -> str:
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
