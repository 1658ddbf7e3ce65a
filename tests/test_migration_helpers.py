"""Revisions that import their own project's helpers, run with a commit's scripts: the
modules they import are importable as they were at that commit, though the checkout has
removed or changed them.

The project keeps its Alembic folder inside the app package (``app/migrations``, as
``flask db init -d app/migrations`` would), so a revision imports ``app.migrations.utils``
beside env.py or ``app.flagging`` from the app, as real projects do."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from db_servers import postgres_connection
from e2e_projects import (
    BIN,
    GITIGNORE,
    Project,
    _sh,
    make_seed_project,
    script,
    sqlite_columns,
    sqlite_version,
)
from gitutil import init_repo

BASE = "base00000001"
F = "feat00000001"

BASE_SCRIPT = script(
    BASE,
    None,
    '    op.create_table("users", sa.Column("id", sa.Integer, primary_key=True),\n'
    '                    sa.Column("name", sa.String(50), nullable=False))\n'
    '    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True),\n'
    '                    sa.Column("text", sa.String(50)))',
    '    op.drop_table("notes")\n    op.drop_table("users")',
)

# The helper beside env.py: the revision imports it when its script is loaded.
UTILS = """\
import sqlalchemy as sa
from alembic import op

MARK = {mark!r}


def add_flag(table):
    with op.batch_alter_table(table) as batch:
        batch.add_column(sa.Column("flag", sa.Integer, nullable=True))


def drop_flag(table):
    with op.batch_alter_table(table) as batch:
        batch.drop_column("flag")


def note(text):
    op.execute(f"INSERT INTO notes (text) VALUES ('{{text}} {{MARK}}')")
"""

F_WITH_UTILS = script(
    F,
    BASE,
    '    utils.add_flag("users")',
    '    utils.drop_flag("users")',
    top="\nfrom app.migrations import utils\n",
)

# A helper package in the app: imported inside downgrade() (when the step runs), and
# importing a sibling module relatively.
FLAGGING = """\
from alembic import op

from .columns import FLAG


def add_flag(table):
    import sqlalchemy as sa

    with op.batch_alter_table(table) as batch:
        batch.add_column(sa.Column(FLAG, sa.Integer, nullable=True))


def drop_flag(table):
    with op.batch_alter_table(table) as batch:
        batch.drop_column(FLAG)
"""

F_WITH_APP_HELPER = script(
    F,
    BASE,
    '    from app.flagging import add_flag\n\n    add_flag("users")',
    '    from app.flagging import drop_flag\n\n    drop_flag("users")',
)

# A revision that puts its own parent folder (env.py's) on sys.path, as some do.
F_WITH_ITS_FOLDER = script(
    F,
    BASE,
    '    utils.add_flag("users")',
    '    utils.drop_flag("users")',
    top="\nimport os\nimport sys\n\n"
    "sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))\n"
    "import utils  # noqa: E402\n",
)

F_NOTING = script(
    F,
    BASE,
    '    utils.note("up")',
    '    utils.note("down")',
    top="\nfrom app.migrations import utils\n",
)


@pytest.fixture(scope="session")
def app_package_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``alembic init app/migrations`` inside an app package, in a new repository."""
    path = tmp_path_factory.mktemp("templates") / "app-package"
    init_repo(path)
    (path / "app").mkdir()
    (path / "app" / "__init__.py").write_text("")
    _sh(path, str(BIN / "alembic"), "init", "app/migrations")
    (path / "app" / "migrations" / "versions").mkdir(exist_ok=True)
    return path


def _project(template: Path, dest: Path, *, url: str = "sqlite:///app.db") -> Project:
    """The template copied and committed with BASE on main."""
    import shutil

    shutil.copytree(template, dest, symlinks=True)
    ini = dest / "alembic.ini"
    ini.write_text(
        "\n".join(
            f"sqlalchemy.url = {url}" if line.startswith("sqlalchemy.url") else line
            for line in ini.read_text().splitlines()
        )
        + "\n"
    )
    (dest / ".gitignore").write_text(GITIGNORE)
    p = Project(dest, "alembic", dest / "app" / "migrations" / "versions", url)
    p.write(f"{BASE}_users.py", BASE_SCRIPT)
    p.commit("base: users, notes")
    return p


def _feature(p: Project, files: dict[str, str]) -> None:
    """Branch ``feature`` from main with ``files`` (paths relative to the top) committed,
    checked out (no hook yet), its database at its head holding two users."""
    p.git("checkout", "-q", "-b", "feature")
    for name, text in files.items():
        path = p.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    p.commit("feature")
    p.ok("sync")
    _execute(p, "INSERT INTO users (name) VALUES ('ada'), ('bob')")


def _execute(p: Project, sql: str) -> None:
    if p.url.startswith("postgresql"):
        with postgres_connection(p.url) as conn:
            conn.execute(sql)
        return
    with sqlite3.connect(p.db_path) as conn:
        conn.execute(sql)


def _rows(p: Project, sql: str) -> list[tuple[object, ...]]:
    if p.url.startswith("postgresql"):
        with postgres_connection(p.url) as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
    with sqlite3.connect(p.db_path) as conn:
        return list(conn.execute(sql))


def _at_base_with_users(p: Project) -> None:
    assert _rows(p, "SELECT version_num FROM alembic_version") == [(BASE,)]
    assert _rows(p, "SELECT name FROM users ORDER BY id") == [("ada",), ("bob",)]
    columns = (
        _rows(p, "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'")
        if p.url.startswith("postgresql")
        else [(c,) for c in sqlite_columns(p.db_path, "users")]
    )
    assert ("flag",) not in columns


UTILS_PATH = "app/migrations/utils.py"
VERSIONS = "app/migrations/versions"


@pytest.mark.parametrize(
    "files",
    [
        {UTILS_PATH: UTILS.format(mark="feature"), f"{VERSIONS}/{F}_flag.py": F_WITH_UTILS},
        {
            "app/flagging/__init__.py": FLAGGING,
            "app/flagging/columns.py": 'FLAG = "flag"\n',
            f"{VERSIONS}/{F}_flag.py": F_WITH_APP_HELPER,
        },
        {UTILS_PATH: UTILS.format(mark="feature"), f"{VERSIONS}/{F}_flag.py": F_WITH_ITS_FOLDER},
    ],
    ids=["beside-env-py", "in-the-app", "by-its-own-folder"],
)
def test_the_hook_reverts_a_revision_whose_helper_the_checkout_removed(
    app_package_template: Path, tmp_path: Path, files: dict[str, str]
) -> None:
    p = _project(app_package_template, tmp_path / "project")
    _feature(p, files)
    assert "flag" in sqlite_columns(p.db_path, "users")
    p.ok("install")
    out = p.checkout("main")
    assert not (p.root / next(iter(files))).exists()
    assert "Traceback" not in out.stderr
    assert f"reverted {F}" in out.stderr, out.stderr
    _at_base_with_users(p)
    p.current()


def test_the_hook_reverts_a_flask_migrate_revision_whose_helper_it_removed(
    flask_template: Path, tmp_path: Path
) -> None:
    pytest.importorskip("flask_migrate")
    p = make_seed_project(flask_template, tmp_path / "blog", kind="flask")
    revision = F_WITH_UTILS.replace("from app.migrations import", "from migrations import")
    _feature(
        p,
        {
            "migrations/utils.py": UTILS.format(mark="feature"),
            f"migrations/versions/{F}_flag.py": revision,
        },
    )
    p.ok("install")
    out = p.checkout("main")
    assert f"reverted {F}" in out.stderr, out.stderr
    _at_base_with_users(p)


@pytest.mark.postgres
def test_the_hook_reverts_with_the_helper_on_postgresql(
    app_package_template: Path, tmp_path: Path, fresh_postgres_url: str
) -> None:
    p = _project(app_package_template, tmp_path / "project", url=fresh_postgres_url)
    _feature(p, {UTILS_PATH: UTILS.format(mark="feature"), f"{VERSIONS}/{F}_flag.py": F_WITH_UTILS})
    p.ok("install")
    out = p.checkout("main")
    assert f"reverted {F}" in out.stderr, out.stderr
    _at_base_with_users(p)


@pytest.mark.parametrize(
    ("helper", "imported"),
    [(UTILS_PATH, "from app.migrations import utils"), ("app/noting.py", "from app import noting")],
    ids=["beside-env-py", "in-the-app"],
)
def test_a_reverted_revision_runs_the_helper_as_it_was_at_its_commit(
    app_package_template: Path, tmp_path: Path, helper: str, imported: str
) -> None:
    p = _project(app_package_template, tmp_path / "project")
    (p.root / helper).write_text(UTILS.format(mark="main"))
    p.commit("main: the helper")
    revision = F_NOTING.replace("from app.migrations import utils", f"{imported} as utils")
    _feature(p, {helper: UTILS.format(mark="feature"), f"{VERSIONS}/{F}_note.py": revision})
    p.ok("install")
    out = p.checkout("main")
    assert "MARK = 'main'" in (p.root / helper).read_text()
    assert f"reverted {F}" in out.stderr, out.stderr
    assert sqlite_version(p.db_path) == {BASE}
    assert _rows(p, "SELECT text FROM notes ORDER BY id") == [("up feature",), ("down feature",)]


@pytest.mark.parametrize("how", ["reset", "deleted-branch"])
def test_sync_reverts_with_the_helper_of_the_commit_that_last_held_the_revision(
    app_package_template: Path, tmp_path: Path, how: str
) -> None:
    p = _project(app_package_template, tmp_path / "project")
    _feature(p, {UTILS_PATH: UTILS.format(mark="feature"), f"{VERSIONS}/{F}_flag.py": F_WITH_UTILS})
    if how == "reset":
        p.git("reset", "-q", "--hard", "main")  # no hook runs: sync is for this
    else:
        p.git("checkout", "-q", "main")  # no hook installed
        p.git("branch", "-q", "-D", "feature")  # its commit is left in the reflog only
    assert not (p.root / UTILS_PATH).exists()
    out = p.ok("sync")
    assert f"reverted {F}" in out.stderr, out.stderr
    _at_base_with_users(p)


def test_verify_and_a_rehearsed_switch_import_the_helpers_of_the_ref_they_run(
    app_package_template: Path, tmp_path: Path
) -> None:
    p = _project(app_package_template, tmp_path / "project")
    p.git("checkout", "-q", "-b", "feature")
    (p.root / UTILS_PATH).write_text(UTILS.format(mark="feature"))
    (p.root / VERSIONS / f"{F}_flag.py").write_text(F_WITH_UTILS)
    p.commit("feature")
    p.git("checkout", "-q", "main")
    p.ok("sync")
    assert not (p.root / UTILS_PATH).exists()
    out = p.branchmig("verify", "feature")
    assert out.returncode == 0, out.stdout + out.stderr
    p.ok("switch", "feature", "--rehearse")
    assert sqlite_version(p.db_path) == {F}
    assert "flag" in sqlite_columns(p.db_path, "users")


def test_a_revision_whose_commit_git_no_longer_has_names_its_script_and_changes_nothing(
    app_package_template: Path, tmp_path: Path
) -> None:
    """branchmig keeps a copy of every script it applied, not of the modules they import:
    once git has lost the branch's commits (reflog expired, pruned), the helper is gone
    with them, and the revert says which script could not load."""
    p = _project(app_package_template, tmp_path / "project")
    _feature(p, {UTILS_PATH: UTILS.format(mark="feature"), f"{VERSIONS}/{F}_flag.py": F_WITH_UTILS})
    p.git("checkout", "-q", "main")
    p.forget_branch("feature")
    out = p.branchmig("sync")
    assert out.returncode == 1
    assert f"Cannot load {VERSIONS}/{F}_flag.py (revision '{F}'): ImportError" in out.stderr
    assert "Traceback" not in out.stderr
    assert sqlite_version(p.db_path) == {F}
    assert "flag" in sqlite_columns(p.db_path, "users")
