"""The finder that makes a commit's modules importable, on real git repositories: what it
serves, what it leaves to the working tree, and that ``sys.modules`` is as before after.

Each test imports a package of its own name, so nothing it loads meets another test."""

from __future__ import annotations

import importlib
import sys
import uuid
from pathlib import Path

import pytest
from gitutil import git, init_repo

from branchmig.commitcode import CodeAt, commit_holding, importable
from branchmig.gitrepo import GitRepo
from branchmig.graph import Revision


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _commit(root: Path) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "change")
    return git(root, "rev-parse", "HEAD").strip()


@pytest.fixture
def pkg_with_helpers_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[GitRepo, str, str]:
    """A package whose commit ``old`` had a helper package and a migrations helper; the
    working tree (committed) has removed the package, left its ``__pycache__`` behind, and
    changed the helper. Returns (repo, old, package name); the top is on ``sys.path``."""
    root = init_repo(tmp_path / "project")
    pkg = f"pkg_{uuid.uuid4().hex[:8]}"
    _write(
        root,
        {
            f"{pkg}/__init__.py": "",
            f"{pkg}/shared.py": "WHERE = 'old'\n",
            f"{pkg}/loaded.py": "WHERE = 'old'\n",
            f"{pkg}/migrations/utils.py": "MARK = 'old'\n",
            f"{pkg}/helpers/__init__.py": "from .consts import VALUE\n",
            f"{pkg}/helpers/consts.py": "VALUE = 1\n",
        },
    )
    old = _commit(root)
    git(root, "rm", "-rq", f"{pkg}/helpers")
    _write(
        root,
        {
            f"{pkg}/shared.py": "WHERE = 'tree'\n",
            f"{pkg}/loaded.py": "WHERE = 'tree'\n",
            f"{pkg}/migrations/utils.py": "MARK = 'new'\n",
            f"{pkg}/helpers/__pycache__/consts.cpython-311.pyc": "",
        },
    )
    _commit(root)
    monkeypatch.syspath_prepend(str(root))
    yield GitRepo.discover(root), old, pkg
    for name in [n for n in sys.modules if n == pkg or n.startswith(f"{pkg}.")]:
        del sys.modules[name]


def test_the_commits_modules_are_served_and_gone_afterwards(
    pkg_with_helpers_removed: tuple[GitRepo, str, str],
) -> None:
    repo, old, pkg = pkg_with_helpers_removed
    before = sys.modules[pkg] if pkg in sys.modules else importlib.import_module(pkg)
    loaded = importlib.import_module(f"{pkg}.loaded")
    tree_utils = importlib.import_module(f"{pkg}.migrations.utils")
    assert tree_utils.MARK == "new"
    code = CodeAt(repo, old, own=(f"{pkg}/migrations",))
    with importable(code):
        helpers = importlib.import_module(f"{pkg}.helpers")
        assert helpers.VALUE == 1  # its relative import served from the commit too
        assert helpers.__spec__.origin == f"{old[:12]}:{pkg}/helpers/__init__.py"
        # The migrations folder's helper as the commit had it, though the tree has one.
        assert importlib.import_module(f"{pkg}.migrations.utils").MARK == "old"
        # Imported already, outside the migrations folders: the working tree's stays
        # (the app env.py loaded); imported by the phase, the commit's.
        assert importlib.import_module(f"{pkg}.loaded").WHERE == "tree"
        assert importlib.import_module(f"{pkg}.shared").WHERE == "old"
    assert f"{pkg}.helpers" not in sys.modules
    assert f"{pkg}.helpers.consts" not in sys.modules
    assert sys.modules[f"{pkg}.migrations.utils"] is tree_utils
    assert sys.modules[pkg] is before
    assert sys.modules[f"{pkg}.loaded"] is loaded
    assert importlib.import_module(f"{pkg}.shared").WHERE == "tree"
    assert importlib.import_module(f"{pkg}.migrations.utils").MARK == "new"
    # Python alone takes the folder left behind for a namespace package (its
    # __pycache__), which is why the finder goes before Python's own.
    assert not hasattr(importlib.import_module(f"{pkg}.helpers"), "VALUE")


def test_without_a_commit_nothing_changes(
    pkg_with_helpers_removed: tuple[GitRepo, str, str],
) -> None:
    _, _, pkg = pkg_with_helpers_removed
    finders = list(sys.meta_path)
    with importable(None):
        assert not hasattr(importlib.import_module(f"{pkg}.helpers"), "VALUE")
    assert sys.meta_path == finders


def test_the_commit_holding_the_scripts_is_found_through_the_reflog(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "project")
    _write(root, {"versions/a.py": "a = 1\n"})
    first = _commit(root)
    git(root, "checkout", "-q", "-b", "gone")
    _write(root, {"versions/a.py": "a = 2\n"})
    changed = _commit(root)
    blob = git(root, "rev-parse", f"{changed}:versions/a.py").strip()
    git(root, "checkout", "-q", "main")
    git(root, "branch", "-q", "-D", "gone")
    repo = GitRepo.discover(root)
    rev = Revision("a", path="versions/a.py", blob=blob)
    assert commit_holding(repo, [rev], first=[first]) == changed
    assert commit_holding(repo, [rev], first=[changed, first]) == changed
    assert commit_holding(repo, [Revision("a", path="versions/a.py", blob="0" * 40)]) is None


def test_folders_are_read_in_sha256_repositories_too(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q", "-b", "main", "--object-format=sha256")
    _write(root, {"app/utils.py": "X = 1\n", "app/sub/__init__.py": ""})
    commit = _commit(root)
    repo = GitRepo.discover(root)
    top = repo.folder_at(commit, "")
    assert top is not None and top["app"][0] is True
    entries = repo.folder_at(commit, "app")
    assert entries is not None
    assert set(entries) == {"utils.py", "sub"}
    assert repo.blob(entries["utils.py"][1]) == b"X = 1\n"
    assert repo.folder_at(commit, "app/utils.py") is None
    assert repo.folder_at(commit, "nowhere") is None
