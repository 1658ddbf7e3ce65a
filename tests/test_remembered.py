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
