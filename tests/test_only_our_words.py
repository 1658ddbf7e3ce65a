"""Only branchmig's words on the terminal (issue 20, item 8): Python warnings raised by
the project's env.py, Alembic or SQLAlchemy are shown with ``-v`` only; the SQLite
batch-mode warning appears only for a SQLite database and an operation SQLite cannot do
in place, and a failure's fix names its real cause."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_projects import F2, F2_SCRIPT, Project, make_seed_project
from sqlalchemy.engine import make_url

AUTOINCREMENT = "autoincrement and existing_autoincrement only make sense for MySQL"

NOISY_ENV = (
    "import warnings\n\n"
    f"warnings.warn({AUTOINCREMENT!r}, UserWarning)\n\n\n"
    "async def _never_awaited() -> None:\n    pass\n\n\n"
    "_never_awaited()  # an async env.py's slip: RuntimeWarning when collected\n"
)


def _noisy_env_on_both_features(p: Project) -> None:
    """env.py warns (a UserWarning, a coroutine never awaited) each time it runs, on
    feature1 and feature2 alike; feature1 checked out."""
    env = p.root / "alembic" / "env.py"
    env.write_text(NOISY_ENV + env.read_text())
    p.commit("env.py: noisy")
    p.git("checkout", "-q", "feature2")
    p.git("checkout", "feature1", "--", "alembic/env.py")
    p.commit("env.py: noisy")
    p.git("checkout", "-q", "feature1")


def test_warnings_raised_in_env_py_are_shown_only_with_v(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    _noisy_env_on_both_features(p)
    quiet = p.ok("switch", "feature2")
    assert AUTOINCREMENT not in quiet.stderr, quiet.stderr
    assert "never awaited" not in quiet.stderr and "Warning" not in quiet.stderr
    told = p.ok("-v", "switch", "feature1", "--no-snapshot")  # env.py runs
    assert f"UserWarning: {AUTOINCREMENT}" in told.stderr, told.stderr
    assert "coroutine '_never_awaited' was never awaited" in told.stderr, told.stderr


F2_AUTOINCREMENT = F2_SCRIPT.replace(
    '                    sa.Column("title", sa.String(100)))',
    '                    sa.Column("title", sa.String(100)))\n'
    '    op.alter_column("posts", "title", existing_type=sa.String(100), autoincrement=False)',
)


@pytest.mark.postgres
def test_alembics_autoincrement_warning_on_postgresql_only_with_v(
    alembic_template: Path, tmp_path: Path, fresh_postgres_url: str
) -> None:
    url = make_url(fresh_postgres_url).render_as_string(hide_password=False)
    p = make_seed_project(alembic_template, tmp_path / "project", kind="alembic", url=url)
    p.git("checkout", "-q", "feature2")
    p.write(f"{F2}_posts.py", F2_AUTOINCREMENT)
    p.commit("feature2: posts.title, autoincrement said")
    p.git("checkout", "-q", "main")
    p.ok("sync")
    quiet = p.ok("switch", "feature2")
    assert AUTOINCREMENT not in quiet.stderr and "Warning" not in quiet.stderr, quiet.stderr
    p.ok("switch", "main", "--no-snapshot")
    told = p.ok("-v", "switch", "feature2", "--no-snapshot")
    assert f"UserWarning: {AUTOINCREMENT}" in told.stderr, told.stderr
