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
    return subprocess.run(
        list(args), cwd=cwd, env=p.environ(), capture_output=True, text=True, check=False
    )


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
