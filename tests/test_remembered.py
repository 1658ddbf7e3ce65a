"""A return to a branch that only restores its snapshot uses the database env.py gave last
time, without loading Alembic, only while nothing env.py reads has changed, the file is the
same one and its alembic_version is what branchmig left there (issue 15). Every test runs
the real hook on a real project whose env.py logs each run, to tell which way was taken."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from e2e_projects import BIN, EMAILS, F1, F2, Project, emails, sqlite_dump, sqlite_version

from branchmig.remembered import inputs
from branchmig.workspace import Workspace

LOGGING = """
import os as _os
with open(_os.path.join(_os.path.dirname(__file__), "..", "envpy.log"), "a") as _log:
    _log.write("ran\\n")
"""
FROM_ENVIRONMENT = """
_url = _os.environ.get("BLOG_DB_URL")
if _url:
    config.set_main_option("sqlalchemy.url", _url)
"""


def _env_py(p: Project) -> Path:
    return p.root / "alembic" / "env.py"


def _logged(p: Project, extra: str = "") -> Project:
    """env.py appends a line to envpy.log each time it runs (and, with ``extra``, more)."""
    text = _env_py(p).read_text()
    anchor = "config = context.config\n"
    _env_py(p).write_text(text.replace(anchor, anchor + LOGGING + extra, 1))
    with open(p.root / ".git" / "info" / "exclude", "a") as exclude:
        exclude.write("envpy.log\nother.db\n")
    return p


def _logged_on_every_branch(p: Project, extra: str = "") -> Project:
    """``_logged``, committed on each branch: a switch refuses uncommitted changes to the
    migrations folder, env.py's included."""
    branches = p.git("for-each-ref", "--format=%(refname:short)", "refs/heads").split()
    for branch in branches:
        p.git("checkout", "-q", branch)
        _logged(p, extra)
        p.git("commit", "-q", "-am", "env.py logs its runs")
    p.git("checkout", "-q", "feature1")
    return p


def runs(p: Project) -> int:
    log = p.root / "envpy.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def users(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return emails(conn)


@pytest.fixture
def remembered(db_at_feature1_head_with_emails: Project) -> Project:
    """feature1's rows in the database, the hooks installed, one trip to feature2 and
    back done the full way: both branches have a snapshot waiting from here on."""
    p = _logged(db_at_feature1_head_with_emails)
    p.ok("install")
    p.checkout("feature2")
    p.checkout("feature1")
    assert users(p.db_path) == EMAILS
    return p


def test_a_return_that_only_restores_runs_no_env_py(remembered: Project) -> None:
    p = remembered
    before = runs(p)
    out = p.checkout("feature2")
    assert "restored the snapshot of 'feature2'" in out.stderr, out.stderr
    assert sqlite_version(p.db_path) == {F2}
    out = p.checkout("feature1")
    assert "restored the snapshot of 'feature1'" in out.stderr, out.stderr
    assert users(p.db_path) == EMAILS and sqlite_version(p.db_path) == {F1}
    status = p.status()
    assert status["in_step"] and status["db_heads"] == [F1]
    assert runs(p) == before  # neither the checkouts nor status ran env.py
    p.current()  # and Alembic agrees


def test_an_input_of_env_py_that_changed_is_read_again(
    db_at_feature1_head_with_emails: Project,
) -> None:
    """env.py takes its URL from BLOG_DB_URL: with another value the remembered file is
    not touched, and the hook acts on the database env.py now names."""
    p = _logged(db_at_feature1_head_with_emails, FROM_ENVIRONMENT)
    p.ok("install")
    p.checkout("feature2")
    p.checkout("feature1")
    kept = sqlite_dump(p.db_path)
    before = runs(p)
    p.env["BLOG_DB_URL"] = f"sqlite:///{p.root / 'other.db'}"
    p.checkout("feature2")
    assert runs(p) > before
    assert sqlite_dump(p.db_path) == kept  # the remembered database was left alone
    assert sqlite_version(p.root / "other.db") == {F2}


def test_a_replaced_database_file_is_read_again(remembered: Project) -> None:
    p = remembered
    copy = p.root / "copy.db"
    shutil.copy(p.db_path, copy)
    os.replace(copy, p.db_path)  # the same content in another file
    before = runs(p)
    out = p.checkout("feature2")
    assert "restored the snapshot of 'feature2'" in out.stderr, out.stderr
    assert runs(p) > before


def test_a_database_moved_by_plain_alembic_is_read_again(remembered: Project) -> None:
    p = remembered
    proc = p.run(str(BIN / "alembic"), "stamp", "base")
    assert proc.returncode == 0, proc.stderr
    before = runs(p)
    p.checkout("feature2")
    assert runs(p) > before  # the hook read the database through env.py


def test_what_env_py_reads_is_in_the_fingerprint(
    alembic_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "p"
    shutil.copytree(alembic_template, root)
    env_py = root / "alembic" / "env.py"
    plain = env_py.read_text()

    def fingerprint(text: str) -> str | None:
        env_py.write_text(text)
        return inputs(Workspace.open(root).project)

    first = fingerprint(plain)
    assert first is not None and fingerprint(plain) == first
    monkeypatch.setenv("UNRELATED_VARIABLE", "1")
    assert fingerprint(plain) == first
    named = plain + '\nimport os\nURL = os.environ.get("APP_DATABASE_URL")\n'
    with_name = fingerprint(named)
    monkeypatch.setenv("APP_DATABASE_URL", "sqlite:///b.db")
    assert fingerprint(named) != with_name
    (root / "myapp").mkdir()
    (root / "myapp" / "__init__.py").write_text("")
    (root / "myapp" / "settings.py").write_text("URL = 'sqlite:///a.db'\n")
    local = plain + "\nfrom myapp.settings import URL\n"
    was = fingerprint(local)
    (root / "myapp" / "settings.py").write_text("URL = 'sqlite:///b.db'\n")
    assert was is not None and fingerprint(local) != was
    (root / "alembic.ini").write_text((root / "alembic.ini").read_text() + "\n# edited\n")
    assert fingerprint(plain) != first
    for unknowable in (
        "\nfrom .models import Base\n",
        "\nimport sys\nsys.path.insert(0, 'x')\n",
        "\ncontext.configure(version_table='v')\n",
    ):
        assert fingerprint(plain + unknowable) is None, unknowable


@pytest.mark.parametrize("point", ["journal", "saved", "migrated", "done"])
def test_a_remembered_return_killed_at_any_point_loses_no_branchs_rows(
    remembered: Project, point: str
) -> None:
    """The hook's restore on the remembered database, killed at each of its steps: the
    checkout is done, the next command puts back or finishes the move, and both
    branches' rows come back with their checkouts."""
    p = remembered
    before = runs(p)
    p.env["BRANCHMIG_FAILPOINT"] = f"{point}:kill"
    p.checkout("feature2")
    del p.env["BRANCHMIG_FAILPOINT"]
    assert runs(p) == before  # it was the remembered way that was killed
    p.ok("sync")
    assert sqlite_version(p.db_path) == {F2}
    p.checkout("feature1")
    assert users(p.db_path) == EMAILS and sqlite_version(p.db_path) == {F1}
    p.checkout("feature2")
    assert sqlite_version(p.db_path) == {F2}
    assert not p.journal.exists()


FROM_A_FILE = """
_url_file = _os.path.join(_os.path.dirname(__file__), "..", "url.txt")
if _os.path.exists(_url_file):
    config.set_main_option("sqlalchemy.url", open(_url_file).read().strip())
"""


def test_a_switch_on_the_remembered_database_runs_env_py_once(
    db_at_feature1_head_with_emails: Project,
) -> None:
    """A switch that migrates takes the remembered database as read: env.py runs once,
    for the move itself (it used to read the database a first time before)."""
    p = _logged_on_every_branch(db_at_feature1_head_with_emails)
    p.ok("sync")  # reads the database through env.py, and remembers it
    before = runs(p)
    p.ok("switch", "feature2")
    assert runs(p) == before + 1
    assert sqlite_version(p.db_path) == {F2}
    p.ok("switch", "feature1")  # restores feature1's snapshot, and migrates nothing
    assert runs(p) == before + 1
    assert users(p.db_path) == EMAILS and sqlite_version(p.db_path) == {F1}
    p.current()  # and Alembic agrees


@pytest.mark.parametrize("snapshot", ["--snapshot", "--no-snapshot"])
def test_a_switch_runs_nothing_when_env_py_connects_elsewhere(
    db_at_feature1_head_with_emails: Project, snapshot: str
) -> None:
    """env.py reads its URL from a file, which the fingerprint of its inputs cannot know
    of: the move's own run of env.py finds another database than the remembered one, and
    nothing runs, on either database, nor is anything checked out."""
    p = _logged_on_every_branch(db_at_feature1_head_with_emails, FROM_A_FILE)
    p.ok("sync")
    other = p.root / "other.db"
    shutil.copy(p.db_path, other)  # at the same revision: only the URL differs
    (p.root / "url.txt").write_text(f"sqlite:///{other}\n")
    with open(p.root / ".git" / "info" / "exclude", "a") as exclude:
        exclude.write("url.txt\n")
    kept, kept_other = sqlite_dump(p.db_path), sqlite_dump(other)
    proc = p.run(str(BIN / "branchmig"), "switch", "feature2", snapshot)
    assert proc.returncode == 1, proc.stderr
    assert "env.py now connects to" in proc.stderr and "run the command again" in proc.stderr
    assert "Nothing changed" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert sqlite_dump(p.db_path) == kept and sqlite_dump(other) == kept_other
    assert p.git("branch", "--show-current").strip() == "feature1"
    assert not p.journal.exists()
    p.ok("switch", "feature2")  # read through env.py now: the database it names moves
    assert sqlite_version(other) == {F2} and sqlite_dump(p.db_path) == kept
