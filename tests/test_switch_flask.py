"""The seed scenario on a real Flask-Migrate project (``flask db init``), the app found
through FLASK_APP, ``.flaskenv`` or ``[tool.branchmig] flask_app``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from e2e_projects import (
    EMAILS,
    F1,
    F2,
    Project,
    emails,
    insert_users,
    make_seed_project,
    sqlite_columns,
    sqlite_tables,
    sqlite_version,
)

pytest.importorskip("flask_migrate")


@pytest.fixture
def flask_repo_with_two_feature_branches(flask_template: Path, tmp_path: Path) -> Project:
    """Flask-Migrate on SQLite, FLASK_APP in the environment; main checked out."""
    return make_seed_project(flask_template, tmp_path / "blog", kind="flask")


def test_flask_seed_round_trip_with_switch_and_hooks(
    flask_repo_with_two_feature_branches: Project,
) -> None:
    p = flask_repo_with_two_feature_branches
    p.ok("install")
    p.ok("switch", "feature1")
    assert sqlite_version(p.db_path) == {F1}
    insert_users(p.db_path)
    held = sqlite3.connect(p.db_path, isolation_level=None)
    try:
        out = p.checkout("feature2")  # through the hook
        assert "Traceback" not in out.stderr
        assert sqlite_version(p.db_path) == {F2}
        assert "email" not in sqlite_columns(p.db_path, "users")
        assert F2 in p.current().stdout
        p.ok("switch", "feature1")
        assert emails(held) == EMAILS
        assert "posts" not in sqlite_tables(p.db_path)
        assert F1 in p.current().stdout
    finally:
        held.close()


@pytest.mark.parametrize("how", ["flaskenv", "pyproject"])
def test_flask_app_found_without_flask_app_in_the_environment(
    flask_template: Path, tmp_path: Path, how: str
) -> None:
    if how == "flaskenv":
        pytest.importorskip("dotenv")
    p = make_seed_project(flask_template, tmp_path / "blog", kind="flask", flask_app=how)
    assert "FLASK_APP" not in p.environ()
    p.ok("switch", "feature1")
    assert sqlite_version(p.db_path) == {F1}
    assert p.status()["db_heads"] == [F1]


def test_missing_flask_app_is_one_line_and_changes_nothing(
    flask_template: Path, tmp_path: Path
) -> None:
    p = make_seed_project(flask_template, tmp_path / "blog", kind="flask", flask_app="none")
    proc = p.branchmig("switch", "feature1")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("branchmig:")]
    assert len(errors) == 1 and "FLASK_APP" in errors[0], proc.stderr
    assert p.branch() == "main"
    assert not p.db_path.exists()


def test_an_app_that_fails_to_import_shows_the_cause(
    flask_repo_with_two_feature_branches: Project,
) -> None:
    p = flask_repo_with_two_feature_branches
    blog = p.root / "blog.py"
    blog.write_text("import flask_nowhere  # a typo\n" + blog.read_text())
    proc = p.branchmig("status")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "ModuleNotFoundError: No module named 'flask_nowhere'" in line, line
    assert "(blog.py, line 1)" in line, line
