"""Build real git repositories holding real Alembic projects, for the analyzer's tests.

Every repository gets a fixed identity and ``main`` as its first branch, so commit ids and
messages do not depend on the machine running the tests.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import warm

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.com",
    "GIT_AUTHOR_DATE": "2024-01-01T12:00:00+00:00",
    "GIT_COMMITTER_DATE": "2024-01-01T12:00:00+00:00",
    "GIT_CONFIG_NOSYSTEM": "1",
}

BRANCHMIG = warm.BRANCHMIG

# The object format of every repository the tests make: BRANCHMIG_TEST_OBJECT_FORMAT=sha256
# runs the suite on SHA-256 repositories (git 3's default), as CI does for the lifecycle.
OBJECT_FORMAT = os.environ.get("BRANCHMIG_TEST_OBJECT_FORMAT", "sha1")

Ids = str | Sequence[str] | None


def git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_ENV)
    return env


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` with the fixed identity; fail the test on a non-zero exit."""
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=git_env(), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def init_repo(path: Path, *, object_format: str | None = None) -> Path:
    """A new repository on ``main``, in ``object_format`` (default: the suite's)."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main", f"--object-format={object_format or OBJECT_FORMAT}")
    git(path, "config", "commit.gpgsign", "false")
    return path


def alembic_init(root: Path, directory: str = "alembic") -> Path:
    """A real ``alembic init`` project in ``root`` (alembic.ini at the top); returns its
    versions folder."""
    from alembic import command
    from alembic.config import Config

    command.init(Config(str(root / "alembic.ini")), str(root / directory))
    versions = root / directory / "versions"
    versions.mkdir(exist_ok=True)
    return versions


def _literal(value: Ids) -> str:
    if value is None or isinstance(value, str):
        return repr(value)
    return repr(tuple(value))


def script_text(
    revision: str,
    down: Ids,
    *,
    labels: Ids = None,
    depends: Ids = None,
    annotated: bool = True,
    upgrade: str = "pass",
    downgrade: str = "pass",
    top: str = "",
) -> str:
    """A migration script as ``alembic revision`` writes it (annotated: Alembic ≥ 1.13's
    template; plain: the older one)."""
    annotation = ": Union[str, Sequence[str], None]" if annotated else ""
    rev_annotation = ": str" if annotated else ""
    return (
        f'"""{revision}\n\nRevision ID: {revision}\nRevises: {down}\n'
        'Create Date: 2024-01-01 12:00:00\n\n"""\n'
        "from typing import Sequence, Union\n\n"
        "from alembic import op\nimport sqlalchemy as sa\n"
        f"{top}\n\n"
        "# revision identifiers, used by Alembic.\n"
        f"revision{rev_annotation} = {revision!r}\n"
        f"down_revision{annotation} = {_literal(down)}\n"
        f"branch_labels{annotation} = {_literal(labels)}\n"
        f"depends_on{annotation} = {_literal(depends)}\n\n\n"
        f"def upgrade() -> None:\n    {upgrade}\n\n\n"
        f"def downgrade() -> None:\n    {downgrade}\n"
    )


@dataclass
class Repo:
    """A git repository with an Alembic project; ``versions`` is its versions folder."""

    root: Path
    versions: Path

    def git(self, *args: str) -> str:
        return git(self.root, *args)

    def write(self, revision: str, down: Ids, *, name: str | None = None, **kw: object) -> Path:
        """Write a migration script into the versions folder (not committed)."""
        path = self.versions / (name or f"{revision}_step.py")
        path.write_text(script_text(revision, down, **kw))  # type: ignore[arg-type]
        return path

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD").strip()

    def checkout(self, ref: str, *, new: bool = False) -> None:
        self.git("checkout", "-q", *(["-b"] if new else []), ref)

    @property
    def cache_file(self) -> Path:
        return self.root / ".git" / "branchmig" / "cache" / "headers.json"


def make_alembic_repo(path: Path) -> Repo:
    root = init_repo(path)
    versions = alembic_init(root)
    (versions / ".keep").write_text("")
    repo = Repo(root, versions)
    repo.commit("alembic init")
    return repo


def run_branchmig(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The console script, run in ``cwd`` (forked warm: ``warm.command``)."""
    return warm.command([BRANCHMIG, *args], cwd=cwd, env=git_env())


# -- fixtures, named by the state they build ----------------------------------------------


@pytest.fixture
def empty_alembic_repo(tmp_path: Path) -> Repo:
    """``alembic init`` committed on main; no revisions yet."""
    return make_alembic_repo(tmp_path / "project")


@pytest.fixture
def repo_with_linear_history(empty_alembic_repo: Repo) -> Repo:
    """main: a1 <- a2 <- a3, committed."""
    repo = empty_alembic_repo
    repo.write("a1", None)
    repo.write("a2", "a1")
    repo.write("a3", "a2")
    repo.commit("three revisions")
    return repo


@pytest.fixture
def repo_with_two_feature_branches(repo_with_linear_history: Repo) -> Repo:
    """main: a1 <- a2 <- a3; feature1 adds f1a <- f1b on a3; feature2 adds f2a on a3
    (its downgrade drops a table). main is checked out."""
    repo = repo_with_linear_history
    repo.checkout("feature1", new=True)
    repo.write("f1a", "a3", downgrade='op.drop_column("users", "email")')
    repo.write("f1b", "f1a", downgrade='op.drop_table("orders")')
    repo.commit("feature1")
    repo.checkout("main")
    repo.checkout("feature2", new=True)
    repo.write("f2a", "a3", downgrade='op.drop_table("invoices")')
    repo.commit("feature2")
    repo.checkout("main")
    return repo


@pytest.fixture
def repo_with_merged_feature_branches(repo_with_two_feature_branches: Repo) -> Repo:
    """main has merged feature1 and feature2 with git: two heads, f1b and f2a."""
    repo = repo_with_two_feature_branches
    repo.git("merge", "-q", "--no-edit", "feature1")
    repo.git("merge", "-q", "--no-edit", "feature2")
    return repo
