"""Real projects for the end-to-end tests: a git repository (fixed identity, ``main``)
holding a real ``alembic init`` or ``flask db init`` project on a SQLite file (or a server
URL), with the seed scenario's migrations written by hand under fixed revision ids.

main: BASE creates ``users``; feature1: F1 adds ``users.email`` (its downgrade drops it in
batch mode); feature2: F2 creates ``posts``. Everything here runs the real commands in
subprocesses with ``cwd`` set: nothing changes this process's working directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import warm
from gitutil import git, git_env, init_repo

BIN = Path(sys.executable).parent
BRANCHMIG = warm.BRANCHMIG

BASE = "base00000001"
F1 = "f1e000000001"
F2 = "f2a000000001"

GITIGNORE = "app.db\napp.db-*\n__pycache__/\n*.pyc\ninstance/\n"

FLASK_APP_TEXT = """\
import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
migrate = Migrate()

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("BLOG_DATABASE_URL") or (
    "sqlite:///" + os.path.join(os.path.dirname(os.path.abspath(__file__)), "app.db"))
db.init_app(app)
migrate.init_app(app, db)
"""


def script(revision: str, down: str | None, upgrade: str, downgrade: str, *, top: str = "") -> str:
    """A migration as ``alembic revision`` writes it, with the given bodies (each a block
    indented by four spaces)."""
    return (
        f'"""{revision}\n\nRevision ID: {revision}\nRevises: {down}\n'
        'Create Date: 2024-01-01 12:00:00\n\n"""\n'
        "from collections.abc import Sequence\n\n"
        "import sqlalchemy as sa\nfrom alembic import op\n"
        f"{top}\n"
        "# revision identifiers, used by Alembic.\n"
        f"revision: str = {revision!r}\n"
        f"down_revision: str | Sequence[str] | None = {down!r}\n"
        "branch_labels: str | Sequence[str] | None = None\n"
        "depends_on: str | Sequence[str] | None = None\n\n\n"
        f"def upgrade() -> None:\n{upgrade}\n\n\n"
        f"def downgrade() -> None:\n{downgrade}\n"
    )


BASE_SCRIPT = script(
    BASE,
    None,
    '    op.create_table("users", sa.Column("id", sa.Integer, primary_key=True),\n'
    '                    sa.Column("name", sa.String(50), nullable=False))',
    '    op.drop_table("users")',
)
F1_SCRIPT = script(
    F1,
    BASE,
    '    op.add_column("users", sa.Column("email", sa.String(100), nullable=True))',
    '    with op.batch_alter_table("users") as batch:\n        batch.drop_column("email")',
)
F2_SCRIPT = script(
    F2,
    BASE,
    '    op.create_table("posts", sa.Column("id", sa.Integer, primary_key=True),\n'
    '                    sa.Column("title", sa.String(100)))',
    '    op.drop_table("posts")',
)


@dataclass
class Project:
    """A git repository holding an Alembic or Flask-Migrate project."""

    root: Path
    kind: str  # "alembic" | "flask"
    versions: Path
    url: str  # the database URL env.py connects to (password included)
    env: dict[str, str] = field(default_factory=dict)  # extra environment for commands

    @property
    def db_path(self) -> Path:
        return self.root / "app.db"

    @property
    def state_dir(self) -> Path:
        return self.root / ".git" / "branchmig"

    @property
    def journal(self) -> Path:
        return self.state_dir / "journal.json"

    def environ(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = git_env()
        env.update(self.env)
        env.update(extra or {})
        return env

    def git(self, *args: str) -> str:
        return git(self.root, *args)

    def write(self, name: str, text: str) -> Path:
        path = self.versions / name
        path.write_text(text)
        return path

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD").strip()

    def forget_branch(self, name: str) -> None:
        """Delete branch ``name`` with its reflog entries and objects: its scripts are then
        in no ref, reflog or object of git."""
        self.git("branch", "-q", "-D", name)
        self.git("reflog", "expire", "--expire=now", "--all")
        self.git("gc", "-q", "--prune=now")

    def branch(self) -> str:
        return self.git("rev-parse", "--abbrev-ref", "HEAD").strip()

    def run(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """``ARGS`` in the project (``warm.command``: branchmig, alembic and flask forked
        warm)."""
        return warm.command(args, cwd=self.root, env=self.environ(env), timeout=timeout)

    def branchmig(
        self, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``branchmig ARGS`` in the project, as a process forked from a warm one
        (``warm``: the same command, without the interpreter's start and imports)."""
        return self.run(BRANCHMIG, *args, env=env)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """``branchmig ARGS`` started in the project as a new interpreter and not waited
        for (a test holds it up or signals it meanwhile); its output piped, as text."""
        return subprocess.Popen(
            [BRANCHMIG, *args],
            cwd=self.root,
            env=self.environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ok(
        self, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``branchmig ARGS``, which must succeed."""
        proc = self.branchmig(*args, env=env)
        assert proc.returncode == 0, f"branchmig {' '.join(args)}:\n{proc.stdout}{proc.stderr}"
        return proc

    def checkout(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A real ``git checkout`` (hooks run); it must succeed."""
        proc = self.run("git", "checkout", *args)
        assert proc.returncode == 0, proc.stderr
        return proc

    def current(self) -> subprocess.CompletedProcess[str]:
        """``alembic current`` / ``flask db current``, which must succeed (no "Can't
        locate revision")."""
        if self.kind == "flask":
            proc = self.run(str(BIN / "flask"), "db", "current")
        else:
            proc = self.run(str(BIN / "alembic"), "current")
        assert proc.returncode == 0, f"current failed:\n{proc.stdout}{proc.stderr}"
        assert "Can't locate revision" not in proc.stdout + proc.stderr
        return proc

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.ok("status", "--json").stdout)
        return data


# -- building -----------------------------------------------------------------------------


def _sh(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> None:
    full = git_env()
    full.update(env or {})
    proc = warm.command(args, cwd=cwd, env=full)
    assert proc.returncode == 0, f"{' '.join(args)}:\n{proc.stdout}{proc.stderr}"


def build_alembic_template(path: Path, *, object_format: str | None = None) -> None:
    """``alembic init alembic`` in a new repository (nothing committed)."""
    init_repo(path, object_format=object_format)
    _sh(path, str(BIN / "alembic"), "init", "alembic")
    (path / "alembic" / "versions").mkdir(exist_ok=True)


def build_flask_template(path: Path, *, object_format: str | None = None) -> None:
    """A Flask-SQLAlchemy + Flask-Migrate app in ``blog.py`` and ``flask db init``."""
    init_repo(path, object_format=object_format)
    (path / "blog.py").write_text(FLASK_APP_TEXT)
    _sh(path, str(BIN / "flask"), "--app", "blog", "db", "init")
    shutil.rmtree(path / "__pycache__", ignore_errors=True)


def set_alembic_url(root: Path, url: str) -> None:
    ini = root / "alembic.ini"
    lines = ini.read_text().splitlines()
    lines = [
        f"sqlalchemy.url = {url.replace('%', '%%')}" if ln.startswith("sqlalchemy.url") else ln
        for ln in lines
    ]
    ini.write_text("\n".join(lines) + "\n")


def make_seed_project(
    template: Path,
    dest: Path,
    *,
    kind: str,
    url: str | None = None,
    flask_app: str = "env",
    extra_pyproject: str = "",
    versions_dir: str | None = None,
) -> Project:
    """Copy the template, commit BASE on main, F1 on feature1, F2 on feature2; main
    checked out. ``flask_app``: how the Flask app is named ("env": FLASK_APP in the
    environment, "flaskenv": a .flaskenv file, "pyproject": [tool.branchmig] flask_app).
    ``versions_dir``: the template's versions folder, relative to its top, when it is not
    the usual one of ``kind`` (alembic/versions; Flask-Migrate's migrations/versions)."""
    shutil.copytree(template, dest, symlinks=True)
    env: dict[str, str] = {}
    pyproject = ""
    if kind == "alembic":
        versions = dest / (versions_dir or "alembic/versions")
        url = url or "sqlite:///app.db"
        set_alembic_url(dest, url)
    else:
        versions = dest / (versions_dir or "migrations/versions")
        if url is not None:
            env["BLOG_DATABASE_URL"] = url
        else:
            url = f"sqlite:///{dest / 'app.db'}"
        if flask_app == "env":
            env["FLASK_APP"] = "blog"
        elif flask_app == "flaskenv":
            (dest / ".flaskenv").write_text("FLASK_APP=blog\n")
        elif flask_app == "pyproject":
            pyproject = '[tool.branchmig]\nflask_app = "blog"\n'
    if pyproject or extra_pyproject:
        text = pyproject or "[tool.branchmig]\n"
        (dest / "pyproject.toml").write_text(text + extra_pyproject)
    (dest / ".gitignore").write_text(GITIGNORE)
    project = Project(dest, kind, versions, url, env)
    project.write(f"{BASE}_users.py", BASE_SCRIPT)
    project.commit("base: users")
    project.git("checkout", "-q", "-b", "feature1")
    project.write(f"{F1}_email.py", F1_SCRIPT)
    project.commit("feature1: users.email")
    project.git("checkout", "-q", "main")
    project.git("checkout", "-q", "-b", "feature2")
    project.write(f"{F2}_posts.py", F2_SCRIPT)
    project.commit("feature2: posts")
    project.git("checkout", "-q", "main")
    return project


# -- looking at the database -----------------------------------------------------------------


def sqlite_version(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        try:
            return {r[0] for r in conn.execute("SELECT version_num FROM alembic_version")}
        except sqlite3.OperationalError:
            return set()


def sqlite_dump(path: Path) -> list[str]:
    """Schema and data of a SQLite file, as lines (what "exactly as before" compares)."""
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def sqlite_tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def sqlite_columns(path: Path, table: str) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def interruptible() -> None:
    """``preexec_fn`` of a process a test interrupts as a terminal's Ctrl-C does: SIGINT
    handled by default, even where the test run itself ignores it (a runner started in
    the background of a shell without job control, whose children inherit SIG_IGN and so
    would never see the Ctrl-C)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(predicate: Callable[[], bool], *, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


# -- fixtures, named by the state they build ---------------------------------------------


@pytest.fixture(scope="session")
def alembic_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("templates") / "alembic"
    build_alembic_template(path)
    return path


@pytest.fixture(scope="session")
def flask_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("templates") / "flask"
    build_flask_template(path)
    return path


@pytest.fixture(scope="session")
def async_alembic_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``alembic init -t async alembic`` in a new repository (nothing committed): env.py
    runs the migrations through ``asyncio.run`` on an async engine."""
    path = tmp_path_factory.mktemp("templates") / "alembic-async"
    init_repo(path)
    _sh(path, str(BIN / "alembic"), "init", "-t", "async", "alembic")
    (path / "alembic" / "versions").mkdir(exist_ok=True)
    assert "async_engine_from_config" in (path / "alembic" / "env.py").read_text()
    return path


# Each async driver of the async template, and the fixture giving a fresh database on its
# server (None: a SQLite file in the project), for ``async_seed_project``.
ASYNC_BACKENDS = [
    pytest.param("aiosqlite", None, id="aiosqlite"),
    pytest.param("asyncpg", "fresh_postgres_url", id="asyncpg", marks=pytest.mark.postgres),
    pytest.param("aiomysql", "fresh_mysql_url", id="aiomysql", marks=pytest.mark.mysql),
]


def async_seed_project(
    request: pytest.FixtureRequest, template: Path, path: Path, driver: str, server: str | None
) -> Project:
    """The seed project of the async template through ``driver``: on a SQLite file, else
    on a fresh database of the server that fixture ``server`` names."""
    pytest.importorskip(driver)
    if server is None:
        return make_seed_project(template, path, kind="alembic", url="sqlite+aiosqlite:///app.db")
    from sqlalchemy.engine import make_url

    url = make_url(request.getfixturevalue(server))
    url = url.set(drivername=f"{url.get_backend_name()}+{driver}")
    return make_seed_project(
        template, path, kind="alembic", url=url.render_as_string(hide_password=False)
    )


def copy_project(project: Project, dest: Path) -> Project:
    """The same state in another folder (relative SQLite URLs keep their database key)."""
    shutil.copytree(project.root, dest, symlinks=True)
    versions = dest / project.versions.relative_to(project.root)
    return Project(dest, project.kind, versions, project.url, dict(project.env))


@pytest.fixture(scope="session")
def _alembic_states(
    alembic_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Project]:
    """Built once: each state is copied by the fixtures below."""
    base = tmp_path_factory.mktemp("states")
    fresh = make_seed_project(alembic_template, base / "fresh", kind="alembic")
    at_main = copy_project(fresh, base / "at_main")
    at_main.ok("sync")
    at_f1 = copy_project(at_main, base / "at_f1")
    # No snapshot of main: the tests built on this state meet main without one.
    at_f1.ok("switch", "feature1", "--no-snapshot")
    insert_users(at_f1.db_path)
    return {"fresh": fresh, "at_main": at_main, "at_f1": at_f1}


@pytest.fixture
def alembic_repo_with_two_feature_branches(
    _alembic_states: dict[str, Project], tmp_path: Path
) -> Project:
    """Plain Alembic on SQLite: main has BASE, feature1 adds F1, feature2 adds F2; main
    checked out, no database yet."""
    return copy_project(_alembic_states["fresh"], tmp_path / "project")


@pytest.fixture
def db_at_main_head(_alembic_states: dict[str, Project], tmp_path: Path) -> Project:
    """The seed repository on main, its database at BASE (by ``branchmig sync``)."""
    return copy_project(_alembic_states["at_main"], tmp_path / "project")


@pytest.fixture
def db_at_feature1_head_with_emails(_alembic_states: dict[str, Project], tmp_path: Path) -> Project:
    """feature1 checked out (by ``branchmig switch --no-snapshot``: main has no
    snapshot), its database at F1 holding two users with emails."""
    return copy_project(_alembic_states["at_f1"], tmp_path / "project")


def insert_users(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO users (name, email) VALUES (?, ?)",
            [("ada", "ada@example.com"), ("bob", "bob@example.com")],
        )


EMAILS = [("ada", "ada@example.com"), ("bob", "bob@example.com")]


def emails(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return [tuple(r) for r in conn.execute("SELECT name, email FROM users ORDER BY id")]


F1B = "f1b000000001"


def feature1_gains_phone(p: Project, *, raising: bool = False) -> None:
    """Commit a second feature1 migration (F1B: ``users.phone``) while the database sits
    on feature2; back on feature2."""
    p.git("checkout", "-q", "feature1")
    body = '    op.add_column("users", sa.Column("phone", sa.String(20), nullable=True))'
    if raising:
        body += '\n    raise RuntimeError("no phones today")'
    p.write(
        f"{F1B}_phone.py",
        script(
            F1B,
            F1,
            body,
            '    with op.batch_alter_table("users") as batch:\n        batch.drop_column("phone")',
        ),
    )
    p.commit("feature1: users.phone")
    p.git("checkout", "-q", "feature2")


RAISING_F2 = F2_SCRIPT.replace(
    '                    sa.Column("title", sa.String(100)))',
    '                    sa.Column("title", sa.String(100)))\n'
    '    raise RuntimeError("posts cannot be created today")',
)


def commit_raising_feature2(p: Project) -> None:
    """feature2's migration, now raising after it created its table; back on feature1."""
    p.git("checkout", "-q", "feature2")
    p.write(f"{F2}_posts.py", RAISING_F2)
    p.commit("feature2: posts, raising")
    p.git("checkout", "-q", "feature1")


def _sleeping_f2(marker: Path) -> str:
    return F2_SCRIPT.replace(
        '                    sa.Column("title", sa.String(100)))',
        '                    sa.Column("title", sa.String(100)))\n'
        f'    open({str(marker)!r}, "w").close()\n'
        "    time.sleep(30)",
    ).replace("import sqlalchemy as sa\n", "import time\n\nimport sqlalchemy as sa\n")


def commit_slow_feature2(p: Project, marker: Path) -> None:
    """feature2's migration creates ``posts``, touches ``marker``, then sleeps 30 s; back
    on feature1."""
    p.git("checkout", "-q", "feature2")
    p.write(f"{F2}_posts.py", _sleeping_f2(marker))
    p.commit("feature2: slow posts")
    p.git("checkout", "-q", "feature1")


def kill_mid_switch(p: Project, marker: Path, *args: str) -> None:
    """``branchmig switch feature2`` killed with SIGKILL while feature2's migration runs."""
    proc = subprocess.Popen(
        [BRANCHMIG, "switch", "feature2", *args],
        cwd=p.root,
        env=p.environ(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: p.journal.exists() and marker.exists() or proc.poll() is not None)
        assert proc.poll() is None, "the switch ended before it could be killed"
        assert p.branch() == "feature2"  # killed after the checkout, mid-upgrade
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)


# Where BRANCHMIG_FAILPOINT stops a move (branchmig/move/execute.py), in the order a switch
# reaches them; "resaved" only when it restores a snapshot then applies what arrived since.
FAILPOINTS = ("journal", "saved", "step", "checked-out", "migrated", "done")


def check_failing_rehearsal_touches_nothing(p: Project, state: Callable[[], Any]) -> None:
    """On feature1, a second revision whose downgrade raises; ``branchmig switch main
    --rehearse --no-snapshot`` fails on the copy, and the live database (as ``state()``
    sees it) and the checkout are as they were."""
    rev = "f1c000000001"
    p.write(
        f"{rev}_raising.py",
        script(
            rev,
            F1,
            "    op.create_table('notes', sa.Column('id', sa.Integer, primary_key=True))",
            "    op.drop_table('notes')\n    raise RuntimeError('this downgrade was never run')",
        ),
    )
    p.commit("feature1: notes, with a downgrade that raises")
    p.ok("sync")
    before = state()
    proc = p.branchmig("switch", "main", "--rehearse", "--no-snapshot")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    said = proc.stderr.strip().splitlines()[-1]
    assert "The rehearsal on a copy of the database failed" in said, said
    assert "RuntimeError: this downgrade was never run" in said, said
    assert said.endswith("the live database was not touched"), said
    assert state() == before and p.branch() == "feature1"
