"""Projects that do not look like the template (issue 20): an Alembic project in a
subfolder (the full-stack FastAPI template's ``backend/``, whose settings read ``../.env``
relative to the folder alembic is run from), a Flask-Migrate project whose
``migrations/alembic.ini`` says ``script_location = .``, an app factory that exits, and
branchmig's own config file left uncommitted."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
import warm
from e2e_projects import (
    BASE,
    BASE_SCRIPT,
    BIN,
    BRANCHMIG,
    F1,
    F1_SCRIPT,
    F2,
    F2_SCRIPT,
    GITIGNORE,
    Project,
    emails,
    insert_users,
    make_seed_project,
    sqlite_columns,
    sqlite_version,
)
from gitutil import alembic_init, init_repo

# The app's settings, as pydantic-settings' ``env_file="../.env"`` reads them: relative
# to the folder the process runs in, a missing file a validation error. Plain Python.
SETTINGS = """\
from pathlib import Path


class SettingsError(Exception):
    pass


def _read(path):
    if not path.is_file():
        raise SettingsError(
            f"1 validation error for Settings: DATABASE_URL field required ({path} not found)"
        )
    pairs = (ln.split("=", 1) for ln in path.read_text().splitlines() if "=" in ln)
    return {k.strip(): v.strip() for k, v in pairs}


class Settings:
    def __init__(self):
        self.SQLALCHEMY_DATABASE_URI = _read(Path("../.env"))["DATABASE_URL"]


settings = Settings()
"""

ENV_PY_SETTINGS = (
    "from app.core.config import settings  # noqa: E402\n\n"
    'config.set_main_option("sqlalchemy.url", settings.SQLALCHEMY_DATABASE_URI)\n'
)


def build_backend_project(root: Path, *, url: str = "sqlite:///app.db") -> Project:
    """The full-stack FastAPI template's shape: ``backend/alembic.ini`` with
    ``script_location = app/alembic`` (relative, resolved from the folder alembic is run
    from), env.py importing ``app.core.config``, whose settings read ``../.env`` (the top
    level's, seen from ``backend/``). BASE on main, F1 on feature1, F2 on feature2."""
    init_repo(root)
    backend = root / "backend"
    (backend / "app" / "core").mkdir(parents=True)
    alembic_init(backend, "app/alembic")
    ini = backend / "alembic.ini"
    ini.write_text(
        "\n".join(
            "script_location = app/alembic" if ln.startswith("script_location") else ln
            for ln in ini.read_text().splitlines()
        )
        + "\n"
    )
    (backend / "app" / "__init__.py").write_text("")
    (backend / "app" / "core" / "__init__.py").write_text("")
    (backend / "app" / "core" / "config.py").write_text(SETTINGS)
    env_py = backend / "app" / "alembic" / "env.py"
    text = env_py.read_text()
    marker = "# add your model's MetaData object here"
    env_py.write_text(text.replace(marker, ENV_PY_SETTINGS + "\n" + marker, 1))
    (root / ".env").write_text(f"PROJECT_NAME=shapes\nDATABASE_URL={url}\n")
    (root / ".gitignore").write_text(GITIGNORE)
    p = Project(root, "alembic", backend / "app" / "alembic" / "versions", url)
    p.write(f"{BASE}_users.py", BASE_SCRIPT)
    p.commit("base: users")
    p.git("checkout", "-q", "-b", "feature1")
    p.write(f"{F1}_email.py", F1_SCRIPT)
    p.commit("feature1: users.email")
    p.git("checkout", "-q", "main")
    p.git("checkout", "-q", "-b", "feature2")
    p.write(f"{F2}_posts.py", F2_SCRIPT)
    p.commit("feature2: posts")
    p.git("checkout", "-q", "main")
    return p


@pytest.fixture(scope="session")
def _backend_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes") / "backend-template"
    build_backend_project(root)
    return root


@pytest.fixture
def backend_repo_with_two_feature_branches(_backend_template: Path, tmp_path: Path) -> Project:
    """The FastAPI-template-shaped repository on SQLite (``backend/app.db``); main checked
    out, no database yet."""
    root = tmp_path / "fullstack"
    shutil.copytree(_backend_template, root, symlinks=True)
    return Project(root, "alembic", root / "backend" / "app" / "alembic" / "versions", "")


def run_at(p: Project, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A command run in ``cwd`` (the repository's top or a subfolder)."""
    return warm.command(args, cwd=cwd, env=p.environ())


def ok_at(p: Project, cwd: Path, *args: str) -> str:
    """``branchmig ARGS`` in ``cwd``, which must succeed."""
    proc = run_at(p, cwd, BRANCHMIG, *args)
    assert proc.returncode == 0, f"branchmig {' '.join(args)} in {cwd}:\n{proc.stdout}{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc.stdout


# Each way of pointing at backend/alembic.ini: (folder to run in, options, setup).
WAYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "-c from the top": ("", ("-c", "backend/alembic.ini")),
    "[tool.branchmig] config": ("", ()),
    "found in backend/": ("backend", ()),
    "-c in backend/": ("backend", ("-c", "alembic.ini")),
}


def _point(p: Project, way: str) -> tuple[Path, tuple[str, ...]]:
    folder, options = WAYS[way]
    if way == "[tool.branchmig] config":
        # Untracked, as a user adds it: branchmig's own config is no uncommitted migration.
        (p.root / "pyproject.toml").write_text('[tool.branchmig]\nconfig = "backend/alembic.ini"\n')
    return p.root / folder, options


@pytest.mark.parametrize("way", list(WAYS))
def test_subfolder_project_every_way(
    backend_repo_with_two_feature_branches: Project, way: str
) -> None:
    """Each way of naming ``backend/alembic.ini``: status, switch and a real ``git
    checkout`` through the installed hook all work, on the database ``alembic`` run from
    ``backend/`` uses (``backend/app.db``, its URL read from the top's .env)."""
    p = backend_repo_with_two_feature_branches
    cwd, options = _point(p, way)
    db = p.root / "backend" / "app.db"
    status = ok_at(p, cwd, *options, "status")
    assert "pending" in status or BASE in status, status
    ok_at(p, cwd, *options, "install")
    ok_at(p, cwd, *options, "switch", "feature1")
    assert p.branch() == "feature1"
    assert sqlite_version(db) == {F1}
    assert not (p.root / "app.db").exists()
    insert_users(db)
    out = p.checkout("feature2")  # the hook, run by git from the top
    assert "Traceback" not in out.stderr and "branchmig: " in out.stderr, out.stderr
    assert sqlite_version(db) == {F2}
    assert "email" not in sqlite_columns(db, "users")
    alembic = run_at(p, p.root / "backend", str(BIN / "alembic"), "current")
    assert F2 in alembic.stdout, alembic.stderr
    p.checkout("feature1")
    with sqlite3.connect(db) as conn:
        assert emails(conn) == [("ada", "ada@example.com"), ("bob", "bob@example.com")]
    assert sqlite_version(db) == {F1}
    assert "in_step" in ok_at(p, cwd, *options, "status", "--json")


def test_subfolder_project_not_found_from_the_top_names_it(
    backend_repo_with_two_feature_branches: Project,
) -> None:
    p = backend_repo_with_two_feature_branches
    proc = p.branchmig("status")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        f"branchmig: No Alembic project in '{p.root}': no alembic.ini and no "
        "migrations/alembic.ini, but there is backend/alembic.ini; run branchmig from "
        "'backend', or name it: "
        'branchmig -c backend/alembic.ini ..., or set config = "backend/alembic.ini" in '
        "[tool.branchmig] of pyproject.toml"
    )


def test_settings_error_in_env_py_is_not_blamed_on_the_url(
    backend_repo_with_two_feature_branches: Project,
) -> None:
    """The app's settings find no ../.env: the message names env.py, the exception and
    the folder env.py ran in, not the database URL."""
    p = backend_repo_with_two_feature_branches
    (p.root / ".env").unlink()
    backend = p.root / "backend"
    for args in (("status",), ("switch", "feature1"), ("sync",)):
        proc = run_at(p, backend, BRANCHMIG, *args)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        said = proc.stderr.strip().splitlines()[-1]
        assert said.startswith(
            "branchmig: env.py ('backend/app/alembic/env.py') failed while loading, before it "
            "reached the database: SettingsError: 1 validation error for Settings: DATABASE_URL "
            "field required (../.env not found) "
            f"(it ran in '{backend}', the folder alembic is run from for "
            "'backend/alembic.ini'); fix what it reads"
        ), said
        assert "database URL" not in said
    assert p.branch() == "main"


# -- Flask-Migrate as real projects carry it --------------------------------------------------


def _flask_template_with(flask_template: Path, dest: Path, *, ini_line: str) -> Path:
    """``flask db init``'s project with ``ini_line`` added under [alembic] of
    migrations/alembic.ini."""
    shutil.copytree(flask_template, dest, symlinks=True)
    ini = dest / "migrations" / "alembic.ini"
    ini.write_text(ini.read_text().replace("[alembic]\n", f"[alembic]\n{ini_line}\n", 1))
    return dest


def test_flask_migrate_with_script_location_dot(flask_template: Path, tmp_path: Path) -> None:
    """``script_location = .`` in migrations/alembic.ini (real projects carry it): still
    Flask-Migrate, known by its env.py; status, switch and the hook work."""
    pytest.importorskip("flask_migrate")
    template = _flask_template_with(flask_template, tmp_path / "t", ini_line="script_location = .")
    p = make_seed_project(template, tmp_path / "blog", kind="flask")
    assert p.status()["pending"] == [BASE]
    p.ok("install")
    p.ok("switch", "feature1")
    assert sqlite_version(p.db_path) == {F1}
    insert_users(p.db_path)
    out = p.checkout("feature2")
    assert "Traceback" not in out.stderr
    assert sqlite_version(p.db_path) == {F2}
    assert F2 in p.current().stdout
    p.checkout("feature1")
    with sqlite3.connect(p.db_path) as conn:
        assert emails(conn) == [("ada", "ada@example.com"), ("bob", "bob@example.com")]


def test_flask_migrate_env_without_the_extension_names_what_was_looked_for(
    flask_template: Path, tmp_path: Path
) -> None:
    """env.py takes its engine from Flask-Migrate, but the app has no Migrate: the message
    says what branchmig looked for, where, and what to do."""
    pytest.importorskip("flask_migrate")
    p = make_seed_project(flask_template, tmp_path / "blog", kind="flask")
    blog = p.root / "blog.py"
    blog.write_text(blog.read_text().replace("migrate.init_app(app, db)\n", ""))
    proc = p.branchmig("status")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() == (
        "branchmig: 'migrations/env.py' takes its engine from Flask-Migrate "
        "(current_app.extensions['migrate']), but the Flask app 'blog' has none: call "
        "Migrate(app, db) in it, or point flask_app in [tool.branchmig] at the app that does"
    )


FACTORY_APP = """\
import os
import sys

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
migrate = Migrate()


def create_app(migrate_on_start=True):
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "app.db")
    db.init_app(app)
    migrate.init_app(app, db)
    if migrate_on_start:
        # What flask_migrate.upgrade() does on "Can't locate revision": log, then exit 1.
        sys.exit(1)
    return app
"""


def test_app_factory_that_exits_is_named_with_the_fix(flask_template: Path, tmp_path: Path) -> None:
    """An app factory that exits on start (it migrates, and cannot): ``status``, ``switch``
    and the hook say so in one line naming the factory, its status and the fix; with the
    fix (a factory that does not migrate on start as ``flask_app``), all works."""
    pytest.importorskip("flask_migrate")
    p = make_seed_project(flask_template, tmp_path / "blog", kind="flask")
    for branch in ("feature1", "feature2", "main"):
        p.git("checkout", "-q", branch)
        (p.root / "blog.py").write_text(FACTORY_APP)
        p.commit("blog: an app factory that migrates on start")
    p.env["FLASK_APP"] = "blog:create_app"
    said = (
        "The Flask app's factory 'create_app' (blog.py, line 20) exited with status 1 while "
        "branchmig loaded it (FLASK_APP='blog:create_app'); a factory that migrates on start "
        "(flask_migrate.upgrade()) exits when its database is at a revision it does not "
        "know. Point flask_app in [tool.branchmig] at a factory that does not migrate on "
        "start, then run: branchmig status"
    )
    for args in (("status",), ("switch", "feature1"), ("sync",)):
        proc = p.branchmig(*args)
        assert (proc.returncode, proc.stderr.strip()) == (1, f"branchmig: {said}"), proc.stderr
    assert p.branch() == "main" and not p.db_path.exists()
    p.ok("install")
    out = p.checkout("feature1")
    assert f"branchmig: {said}" in out.stderr.splitlines(), out.stderr
    assert "Traceback" not in out.stderr
    flask = p.run(str(BIN / "flask"), "branchmig", "status")
    assert (flask.returncode, flask.stderr.strip()) == (1, f"branchmig: {said}"), flask.stderr
    (p.root / "pyproject.toml").write_text(
        '[tool.branchmig]\nflask_app = "blog:create_app(migrate_on_start=False)"\n'
    )
    p.ok("sync")
    assert sqlite_version(p.db_path) == {F1}


def test_branchmigs_own_config_is_no_uncommitted_migration(
    alembic_repo_with_two_feature_branches: Project,
) -> None:
    """alembic.ini edited (a local URL, say) and an untracked pyproject.toml holding
    [tool.branchmig]: ``switch`` goes ahead; a script left uncommitted still stops it."""
    p = alembic_repo_with_two_feature_branches
    ini = p.root / "alembic.ini"
    ini.write_text(ini.read_text() + "# my local notes\n")
    (p.root / "pyproject.toml").write_text('[tool.branchmig]\nsnapshots = "always"\n')
    p.ok("switch", "feature1")
    assert sqlite_version(p.db_path) == {F1}
    p.write("stray.py", "# not committed\n")
    proc = p.branchmig("switch", "main")
    assert proc.returncode == 1
    assert "Uncommitted changes in the migrations (alembic/versions/stray.py)" in proc.stderr


def test_subfolder_project_on_postgresql(tmp_path: Path, fresh_postgres_url: str) -> None:
    """The same layout on PostgreSQL (the URL in the top's .env, read from ``backend/``):
    ``switch`` and the hook keep each branch's rows."""
    from db_servers import postgres_connection

    p = build_backend_project(tmp_path / "fullstack", url=fresh_postgres_url)
    (p.root / "pyproject.toml").write_text('[tool.branchmig]\nconfig = "backend/alembic.ini"\n')

    def version() -> set[str]:
        with postgres_connection(fresh_postgres_url) as conn:
            return {r[0] for r in conn.execute("SELECT version_num FROM alembic_version")}

    p.ok("install")
    p.ok("switch", "feature1")
    assert version() == {F1}
    with postgres_connection(fresh_postgres_url) as conn:
        conn.execute("INSERT INTO users (name, email) VALUES ('ada', 'ada@example.com')")
    out = p.checkout("feature2")
    assert "Traceback" not in out.stderr
    assert version() == {F2}
    p.checkout("feature1")
    with postgres_connection(fresh_postgres_url) as conn:
        assert conn.execute("SELECT name, email FROM users").fetchall() == [
            ("ada", "ada@example.com")
        ]
    assert version() == {F1}


def test_env_py_whose_app_factory_exits_is_named(
    alembic_repo_with_two_feature_branches: Project,
) -> None:
    """A plain Alembic env.py that builds the app, whose factory exits (it migrates on
    start): one line naming env.py, the factory and the status, not silence."""
    p = alembic_repo_with_two_feature_branches
    (p.root / "myapp.py").write_text(
        "import sys\n\n\ndef create_app():\n    sys.exit(1)  # flask_migrate.upgrade() failed\n"
    )
    env_py = p.root / "alembic" / "env.py"
    env_py.write_text("from myapp import create_app\n\napp = create_app()\n" + env_py.read_text())
    for args in (("status",), ("sync",)):
        proc = p.branchmig(*args)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.strip() == (
            "branchmig: env.py ('alembic/env.py') failed while loading, before it reached the "
            "database: SystemExit: its factory 'create_app' (myapp.py, line 5) exited with "
            f"status 1 (it ran in '{p.root}', the folder alembic is run from for "
            "'alembic.ini'); fix what it reads (the app's settings, a .env file), then run: "
            "branchmig status"
        )


def test_flask_migrate_project_in_a_subfolder(flask_template: Path, tmp_path: Path) -> None:
    """``backend/blog.py`` with ``backend/migrations`` (``flask db`` run in backend/):
    found from backend/, the app loaded from there, and the hook (run from the top)
    brings the database along."""
    pytest.importorskip("flask_migrate")
    root = init_repo(tmp_path / "site")
    shutil.copytree(flask_template, root / "backend", ignore=shutil.ignore_patterns(".git"))
    (root / ".gitignore").write_text(GITIGNORE)
    backend = root / "backend"
    p = Project(root, "flask", backend / "migrations" / "versions", "", {"FLASK_APP": "blog"})
    p.write(f"{BASE}_users.py", BASE_SCRIPT)
    p.commit("base: users")
    p.git("checkout", "-q", "-b", "feature1")
    p.write(f"{F1}_email.py", F1_SCRIPT)
    p.commit("feature1: users.email")
    p.git("checkout", "-q", "main")
    db = backend / "app.db"
    ok_at(p, backend, "install")
    ok_at(p, backend, "sync")
    assert sqlite_version(db) == {BASE}
    out = p.checkout("feature1")
    assert "Traceback" not in out.stderr
    assert sqlite_version(db) == {F1}
    assert '"in_step": true' in ok_at(p, backend, "status", "--json")
