"""Installing branchmig's git hooks, and what the installed hooks do on real git commands.

The hooks record a Python interpreter at install time; here it is a shell script that
appends its arguments to a log, so these tests see exactly when the hooks would start
branchmig, without depending on what branchmig then does.
"""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from branchmig import hooks
from branchmig.errors import BranchmigError, ConfigError, GitError

HOOK_NAMES = ("post-checkout", "post-merge", "post-rewrite", "post-commit")
TEMPLATE = Path(__file__).resolve().parent.parent / "hooks" / "hook-tmpl"
TEMPLATED_BLOCK = b"# start templated\nhook=\n# end templated\n"


def script_of(name: str) -> bytes:
    """What ``install`` writes for hook ``name``: the template, its name in the block."""
    template = TEMPLATE.read_bytes()
    assert template.count(TEMPLATED_BLOCK) == 1
    return template.replace(
        TEMPLATED_BLOCK, f"# start templated\nhook={name}\n# end templated\n".encode()
    )


def git(cwd: Path, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("check", True)
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        **kwargs,
    )


def commit_files(repo: Path, message: str, files: dict[str, str]) -> str:
    for name, content in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    git(repo, "add", "--", *files)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").stdout.strip()


def is_executable(path: Path) -> bool:
    return os.access(path, os.X_OK)


@pytest.fixture(autouse=True)
def isolated_git_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's own ~/.gitconfig (a global core.hooksPath, say) must not leak in.
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "global.gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("BRANCHMIG_SKIP_HOOK", raising=False)


@dataclass
class FakePython:
    """An executable standing in for the recorded interpreter: it logs how it was called."""

    path: Path
    log: Path
    stdin_log: Path

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def clear(self) -> None:
        self.log.unlink(missing_ok=True)
        self.stdin_log.unlink(missing_ok=True)


@pytest.fixture
def fake_python(tmp_path: Path) -> FakePython:
    log = tmp_path / "python-calls.log"
    stdin_log = tmp_path / "python-stdin.log"
    path = tmp_path / "bin" / "fake-python"
    path.parent.mkdir()
    # Exits 1: whatever branchmig returns, the hook must not make git fail.
    path.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\ncat >> "{stdin_log}"\nexit 1\n')
    path.chmod(0o755)
    return FakePython(path=path, log=log, stdin_log=stdin_log)


@dataclass
class Commits:
    base: str
    app_changed: str
    """On branch ``other``: only app.py differs from ``base``."""
    migration_added: str
    """On branch ``feature``: a new migration script."""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    git(tmp_path, "init", "-q", "-b", "main", str(path))
    return path


@pytest.fixture
def repo_with_feature_and_other_branches(repo: Path) -> Commits:
    base = commit_files(
        repo,
        "base",
        {"app.py": "v1\n", "migrations/versions/a.py": "revision = 'a'\n", "README": "r\n"},
    )
    git(repo, "checkout", "-q", "-b", "other")
    app_changed = commit_files(repo, "app", {"app.py": "v2\n"})
    git(repo, "checkout", "-q", "-b", "feature", base)
    migration_added = commit_files(
        repo, "migration b", {"migrations/versions/b.py": "revision = 'b'\n"}
    )
    git(repo, "checkout", "-q", "main")
    return Commits(base=base, app_changed=app_changed, migration_added=migration_added)


@pytest.fixture
def repo_with_hooks(
    repo: Path, repo_with_feature_and_other_branches: Commits, fake_python: FakePython
) -> Commits:
    hooks.install(repo_root=repo, python=str(fake_python.path), watch=["migrations"])
    return repo_with_feature_and_other_branches


FOREIGN_HOOK = """#!/bin/sh
# someone else's hook
echo "$@" >> "$(git rev-parse --git-common-dir)/foreign-hook-ran"
exit 3
"""


# The first lines of a hook as the branchmig of one file per hook wrote it (the marker is
# the same), and the end of one that finds nothing to do.
OLD_VERSION_HOOK = """#!/bin/sh
# branchmig-hook: written by `branchmig install`; `branchmig uninstall` removes it.
# Brings the database along after `git merge` / `git pull`. The path that changes nothing
# uses only shell builtins and one git call (two in a linked worktree).
# It never makes git fail: its exit status is the chained hook's (0 without one).
hook={name}
case $0 in */*) here=${{0%/*}} ;; *) here=. ;; esac
exit 0
"""


@pytest.fixture
def repo_with_hooks_of_the_old_version(repo: Path, fake_python: FakePython) -> Path:
    """The four hooks and hook.conf as a branchmig without the template installed them."""
    hooks.install(repo_root=repo, python=str(fake_python.path), watch=["migrations"])
    hooks_dir = repo / ".git" / "hooks"
    for name in HOOK_NAMES:
        (hooks_dir / name).write_text(OLD_VERSION_HOOK.format(name=name))
    return hooks_dir


@pytest.fixture
def repo_with_foreign_post_checkout(
    repo: Path, repo_with_feature_and_other_branches: Commits
) -> Path:
    path = repo / ".git" / "hooks" / "post-checkout"
    path.write_text(FOREIGN_HOOK)
    path.chmod(0o750)
    return path


# --- install / uninstall / installed -------------------------------------------------


def test_install_writes_four_executable_hooks_and_config(
    repo: Path, fake_python: FakePython
) -> None:
    result = hooks.install(
        repo_root=repo, python=str(fake_python.path), watch=["migrations", "./alembic.ini"]
    )

    hooks_dir = repo / ".git" / "hooks"
    assert result.hooks_dir == hooks_dir
    assert result.installed == tuple(hooks_dir / name for name in HOOK_NAMES)
    assert result.chained == ()
    for name in HOOK_NAMES:
        assert (hooks_dir / name).read_bytes() == script_of(name)
        assert is_executable(hooks_dir / name)
    assert result.config == repo / ".git" / "branchmig" / "hook.conf"
    conf = result.config.read_text().splitlines()
    assert f"python={fake_python.path}" in conf
    assert [line for line in conf if line.startswith("watch=")] == [
        "watch=migrations",
        "watch=alembic.ini",
    ]
    assert result.watch == ("migrations", "alembic.ini")


def test_install_twice_is_idempotent(repo: Path, fake_python: FakePython) -> None:
    hooks.install(repo_root=repo, python=str(fake_python.path), watch=["migrations"])
    again = hooks.install(repo_root=repo, python=str(fake_python.path), watch=["migrations"])

    assert again.chained == ()
    hooks_dir = repo / ".git" / "hooks"
    assert not list(hooks_dir.glob("*.branchmig-chained"))
    for name in HOOK_NAMES:
        assert (hooks_dir / name).read_bytes() == script_of(name)
    status = hooks.installed(repo_root=repo)
    assert status.complete
    assert all(hook.chained is None for hook in status.hooks)


def test_installed_reports_hooks_dir_config_and_chained_hook(
    repo: Path, repo_with_foreign_post_checkout: Path, fake_python: FakePython
) -> None:
    before = hooks.installed(repo_root=repo)
    assert not before.complete
    assert before.config is None and before.python is None and before.watch == ()
    assert [hook.foreign for hook in before.hooks] == [True, False, False, False]

    hooks.install(repo_root=repo, python=str(fake_python.path), watch=["migrations"])
    after = hooks.installed(repo_root=repo / "migrations")

    assert after.complete
    assert after.hooks_dir == repo / ".git" / "hooks"
    assert after.python == str(fake_python.path)
    assert after.watch == ("migrations",)
    by_name = {hook.name: hook for hook in after.hooks}
    assert by_name["post-checkout"].chained == (
        repo / ".git" / "hooks" / "post-checkout.branchmig-chained"
    )
    assert by_name["post-merge"].chained is None
    assert not any(hook.foreign for hook in after.hooks)


def test_existing_hook_is_chained_keeps_its_exit_status_and_is_restored_by_uninstall(
    repo: Path,
    repo_with_feature_and_other_branches: Commits,
    repo_with_foreign_post_checkout: Path,
    fake_python: FakePython,
) -> None:
    commits = repo_with_feature_and_other_branches
    original = repo_with_foreign_post_checkout.read_bytes()
    original_mode = stat.S_IMODE(repo_with_foreign_post_checkout.stat().st_mode)
    ran = repo / ".git" / "foreign-hook-ran"

    result = hooks.install(repo_root=repo, python=str(fake_python.path), watch=["migrations"])
    assert result.chained == (repo / ".git" / "hooks" / "post-checkout.branchmig-chained",)
    again = hooks.install(repo_root=repo, python=str(fake_python.path), watch=["migrations"])
    assert again.chained == ()

    # Migrations differ: both the foreign hook and branchmig run, and the foreign hook's
    # failure still fails the checkout (git turns any hook failure into status 1).
    checkout = git(repo, "checkout", "-q", "feature", check=False)
    assert checkout.returncode == 1
    assert ran.read_text() == f"{commits.base} {commits.migration_added} 1\n"
    assert fake_python.calls() == [
        f"-m branchmig.hookrun post-checkout {commits.base} {commits.migration_added} 1"
    ]

    # The hook's own status is exactly the foreign one, as git ran it (top level as cwd).
    hook = subprocess.run(
        [
            str(repo / ".git" / "hooks" / "post-checkout"),
            commits.migration_added,
            commits.base,
            "1",
        ],
        cwd=repo,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert hook.returncode == 3
    assert len(fake_python.calls()) == 2

    # A file checkout: the foreign hook still runs, branchmig not. (Here git passes the
    # hook's status through unchanged.)
    fake_python.clear()
    file_checkout = git(repo, "checkout", "--", "app.py", check=False)
    assert file_checkout.returncode == 3
    assert ran.read_text().splitlines()[-1].endswith(" 0")
    assert fake_python.calls() == []

    result_un = hooks.uninstall(repo_root=repo)
    assert result_un.restored == (repo_with_foreign_post_checkout,)
    assert repo_with_foreign_post_checkout.read_bytes() == original
    assert stat.S_IMODE(repo_with_foreign_post_checkout.stat().st_mode) == original_mode
    assert not (repo / ".git" / "hooks" / "post-checkout.branchmig-chained").exists()


def test_uninstall_removes_only_ours_and_the_config(repo: Path, fake_python: FakePython) -> None:
    hooks_dir = repo / ".git" / "hooks"
    hooks_dir.mkdir(parents=True, exist_ok=True)
    pre_commit = hooks_dir / "pre-commit"
    pre_commit.write_text("#!/bin/sh\nexit 0\n")
    hooks.install(repo_root=repo, python=str(fake_python.path), watch=["migrations"])
    # Another tool took post-merge over after us: it is theirs now.
    theirs = hooks_dir / "post-merge"
    theirs.write_text("#!/bin/sh\n# another tool\n")

    result = hooks.uninstall(repo_root=repo)

    assert result.removed == (
        hooks_dir / "post-checkout",
        hooks_dir / "post-rewrite",
        hooks_dir / "post-commit",
    )
    assert result.restored == ()
    assert result.config_removed
    assert theirs.read_text() == "#!/bin/sh\n# another tool\n"
    assert pre_commit.read_text() == "#!/bin/sh\nexit 0\n"
    assert not (hooks_dir / "post-checkout").exists()
    assert not (repo / ".git" / "branchmig" / "hook.conf").exists()
    assert hooks.uninstall(repo_root=repo).removed == ()


def test_hooks_of_the_old_version_are_ours_and_uninstall_removes_them(
    repo: Path, repo_with_hooks_of_the_old_version: Path
) -> None:
    hooks_dir = repo_with_hooks_of_the_old_version
    status = hooks.installed(repo_root=repo)
    assert status.complete and not any(hook.foreign for hook in status.hooks)

    result = hooks.uninstall(repo_root=repo)

    assert result.removed == tuple(hooks_dir / name for name in HOOK_NAMES)
    assert result.restored == () and result.config_removed
    assert not any((hooks_dir / name).exists() for name in HOOK_NAMES)


def test_install_over_the_old_version_rewrites_the_hooks_from_the_template(
    repo: Path, repo_with_hooks_of_the_old_version: Path, fake_python: FakePython
) -> None:
    hooks_dir = repo_with_hooks_of_the_old_version

    result = hooks.install(repo_root=repo, python=str(fake_python.path), watch=["migrations"])

    assert result.chained == ()
    assert not list(hooks_dir.glob("*.branchmig-chained"))
    for name in HOOK_NAMES:
        assert (hooks_dir / name).read_bytes() == script_of(name)
        assert is_executable(hooks_dir / name)


def test_install_refuses_when_a_foreign_hook_and_a_chained_one_both_exist(
    repo: Path, fake_python: FakePython
) -> None:
    hooks.install(repo_root=repo, python=str(fake_python.path), watch=["migrations"])
    hooks_dir = repo / ".git" / "hooks"
    (hooks_dir / "post-rewrite.branchmig-chained").write_text("#!/bin/sh\n# older\n")
    (hooks_dir / "post-rewrite").write_text("#!/bin/sh\n# newer\n")
    (hooks_dir / "post-checkout").unlink()

    with pytest.raises(BranchmigError, match="merge the two by hand"):
        hooks.install(repo_root=repo, python=str(fake_python.path), watch=["migrations"])

    # Nothing was touched: the checks come before any change.
    assert not (hooks_dir / "post-checkout").exists()
    assert (hooks_dir / "post-rewrite").read_text() == "#!/bin/sh\n# newer\n"


@pytest.mark.parametrize("absolute", [False, True], ids=["relative", "absolute"])
def test_core_hooks_path_is_honoured(
    repo: Path, tmp_path: Path, fake_python: FakePython, absolute: bool
) -> None:
    commit_files(repo, "base", {"migrations/versions/a.py": "revision = 'a'\n"})
    if absolute:
        expected = tmp_path / "shared-hooks"
        git(repo, "config", "core.hooksPath", str(expected))
    else:
        expected = repo / ".githooks"
        git(repo, "config", "core.hooksPath", ".githooks")

    # From a subfolder too: a relative hooksPath is relative to the top level.
    result = hooks.install(
        repo_root=repo / "migrations", python=str(fake_python.path), watch=["migrations"]
    )

    assert result.hooks_dir == expected
    assert all(is_executable(expected / name) for name in HOOK_NAMES)
    git(repo, "checkout", "-q", "-b", "feature")
    commit_files(repo, "migration b", {"migrations/versions/b.py": "revision = 'b'\n"})
    git(repo, "checkout", "-q", "main")
    assert [call.split()[2] for call in fake_python.calls()] == ["post-checkout"]
    assert not (repo / ".git" / "hooks" / "post-checkout").exists()
    assert result.config == repo / ".git" / "branchmig" / "hook.conf"
    assert hooks.installed(repo_root=repo).complete
    assert hooks.uninstall(repo_root=repo).removed == tuple(expected / name for name in HOOK_NAMES)


def test_linked_worktree_uses_the_common_hooks(
    repo: Path,
    tmp_path: Path,
    repo_with_feature_and_other_branches: Commits,
    fake_python: FakePython,
) -> None:
    commits = repo_with_feature_and_other_branches
    worktree = tmp_path / "worktree"
    git(repo, "worktree", "add", "-q", str(worktree), "other")

    result = hooks.install(repo_root=worktree, python=str(fake_python.path), watch=["migrations"])

    assert result.hooks_dir == repo / ".git" / "hooks"
    assert result.config == repo / ".git" / "branchmig" / "hook.conf"
    git(worktree, "checkout", "-q", "--detach", commits.base)  # only app.py differs
    assert fake_python.calls() == []
    git(worktree, "checkout", "-q", "feature")
    assert fake_python.calls() == [
        f"-m branchmig.hookrun post-checkout {commits.base} {commits.migration_added} 1"
    ]


def test_install_rejects_bad_arguments(repo: Path, tmp_path: Path, fake_python: FakePython) -> None:
    python = str(fake_python.path)
    with pytest.raises(ConfigError, match="No watched paths"):
        hooks.install(repo_root=repo, python=python, watch=[])
    with pytest.raises(ConfigError, match="outside the repository"):
        hooks.install(repo_root=repo, python=python, watch=[str(tmp_path)])
    with pytest.raises(ConfigError, match="without '..'"):
        hooks.install(repo_root=repo, python=python, watch=["../elsewhere"])
    with pytest.raises(ConfigError, match="not found"):
        hooks.install(repo_root=repo, python=str(tmp_path / "no-python"), watch=["m"])
    with pytest.raises(GitError, match="not inside a git repository"):
        hooks.install(repo_root=tmp_path, python=python, watch=["m"])
    assert not (repo / ".git" / "hooks" / "post-checkout").exists()

    result = hooks.install(
        repo_root=repo, python=python, watch=[str(repo / "migrations/"), "migrations"]
    )
    assert result.watch == ("migrations",)


# --- the installed hooks, run by git --------------------------------------------------


def test_checkout_with_identical_watched_paths_starts_nothing(
    repo: Path, repo_with_hooks: Commits, fake_python: FakePython
) -> None:
    git(repo, "checkout", "-q", "other")
    git(repo, "checkout", "-q", "main")
    assert fake_python.calls() == []


def test_checkout_with_changed_migrations_starts_branchmig_once(
    repo: Path, repo_with_hooks: Commits, fake_python: FakePython
) -> None:
    commits = repo_with_hooks
    # Exit 0 although the fake Python fails.
    git(repo, "checkout", "-q", "feature")
    assert fake_python.calls() == [
        f"-m branchmig.hookrun post-checkout {commits.base} {commits.migration_added} 1"
    ]


def test_file_checkout_and_new_branch_on_same_commit_start_nothing(
    repo: Path, repo_with_hooks: Commits, fake_python: FakePython
) -> None:
    (repo / "migrations" / "versions" / "a.py").write_text("edited\n")
    git(repo, "checkout", "--", "migrations/versions/a.py")
    git(repo, "checkout", "-q", "-b", "x")
    git(repo, "switch", "-q", "-c", "y")
    assert fake_python.calls() == []


def test_skip_variable_starts_nothing(
    repo: Path, repo_with_hooks: Commits, fake_python: FakePython
) -> None:
    subprocess.run(
        ["git", "checkout", "-q", "feature"],
        cwd=repo,
        check=True,
        env={**os.environ, "BRANCHMIG_SKIP_HOOK": "1"},
    )
    assert fake_python.calls() == []


def test_watched_path_missing_on_one_side_counts_as_changed(
    repo: Path, repo_with_feature_and_other_branches: Commits, fake_python: FakePython
) -> None:
    hooks.install(repo_root=repo, python=str(fake_python.path), watch=["migrations", "alembic.ini"])
    # alembic.ini is on neither side: that is no change.
    git(repo, "checkout", "-q", "other")
    added = commit_files(repo, "alembic.ini", {"alembic.ini": "[alembic]\n"})
    assert fake_python.calls() == []

    git(repo, "checkout", "-q", "main")

    assert fake_python.calls() == [
        f"-m branchmig.hookrun post-checkout {added} {repo_with_feature_and_other_branches.base} 1"
    ]


def test_merge_changing_migrations_starts_post_merge(
    repo: Path, repo_with_hooks: Commits, fake_python: FakePython
) -> None:
    git(repo, "merge", "-q", "--no-edit", "other")
    assert fake_python.calls() == []  # only app.py came in

    git(repo, "merge", "-q", "--no-edit", "feature")

    assert fake_python.calls() == ["-m branchmig.hookrun post-merge 0"]


def test_squash_merge_starts_post_merge_whatever_it_brought(
    repo: Path, repo_with_hooks: Commits, fake_python: FakePython
) -> None:
    # HEAD does not move: the hook cannot compare commits and leaves it to branchmig.
    git(repo, "merge", "-q", "--squash", "other")

    assert fake_python.calls() == ["-m branchmig.hookrun post-merge 1"]


def test_merge_concluded_by_commit_starts_post_commit_and_other_commits_nothing(
    repo: Path, repo_with_hooks: Commits, fake_python: FakePython
) -> None:
    git(repo, "checkout", "-q", "feature")
    commit_files(repo, "readme on feature", {"README": "feature\n"})
    git(repo, "checkout", "-q", "main")
    fake_python.clear()
    commit_files(repo, "readme on main", {"README": "main\n"})
    assert git(repo, "merge", "-q", "feature", check=False).returncode != 0  # README conflicts
    assert fake_python.calls() == []

    (repo / "README").write_text("both\n")
    git(repo, "add", "README")
    git(repo, "commit", "-q", "--no-edit")

    assert fake_python.calls() == ["-m branchmig.hookrun post-commit"]


def test_rebase_starts_branchmig_once_after_it_not_during_it(
    repo: Path, repo_with_hooks: Commits, fake_python: FakePython
) -> None:
    # main gets a migration; `other` (no migrations of its own) is rebased onto it.
    git(repo, "merge", "-q", "--no-ff", "--no-edit", "feature")
    git(repo, "checkout", "-q", "other")
    fake_python.clear()

    git(repo, "rebase", "-q", "main")

    assert fake_python.calls() == ["-m branchmig.hookrun post-rewrite rebase"]
    # git's "old new" lines reach branchmig on stdin.
    old_other = repo_with_hooks.app_changed
    new_other = git(repo, "rev-parse", "HEAD").stdout.strip()
    assert fake_python.stdin_log.read_text() == f"{old_other} {new_other}\n"


def test_amend_starts_nothing_and_chained_post_rewrite_gets_stdin(
    repo: Path, repo_with_hooks: Commits, fake_python: FakePython
) -> None:
    hooks_dir = repo / ".git" / "hooks"
    received = repo / ".git" / "chained-stdin"
    foreign = f'#!/bin/sh\necho "$@" >> "{received}"\ncat >> "{received}"\n'
    (hooks_dir / "post-rewrite.branchmig-chained").write_text(foreign)
    (hooks_dir / "post-rewrite.branchmig-chained").chmod(0o755)
    old = git(repo, "rev-parse", "HEAD").stdout.strip()

    git(repo, "commit", "-q", "--amend", "-m", "amended")

    new = git(repo, "rev-parse", "HEAD").stdout.strip()
    assert received.read_text() == f"amend\n{old} {new}\n"
    assert fake_python.calls() == []


def test_bisect_checkouts_start_nothing(
    repo: Path, repo_with_hooks: Commits, fake_python: FakePython
) -> None:
    git(repo, "checkout", "-q", "feature")
    for name in "cde":
        commit_files(repo, name, {f"migrations/versions/{name}.py": f"revision = '{name}'\n"})
    fake_python.clear()

    git(repo, "bisect", "start", "feature", repo_with_hooks.base)
    git(repo, "bisect", "bad")
    git(repo, "bisect", "reset")

    # `bisect reset` checks out before it removes BISECT_LOG, so it is skipped too: right,
    # since the database never left `feature` during the bisect.
    assert fake_python.calls() == []


def test_missing_recorded_python_says_to_install_again_and_git_succeeds(
    repo: Path, repo_with_hooks: Commits, fake_python: FakePython
) -> None:
    fake_python.path.unlink()

    checkout = git(repo, "checkout", "-q", "feature")

    assert checkout.returncode == 0
    assert "run: branchmig install" in checkout.stderr
    assert len(checkout.stderr.strip().splitlines()) == 1


def test_hooks_without_config_do_nothing(
    repo: Path, repo_with_hooks: Commits, fake_python: FakePython
) -> None:
    # A core.hooksPath shared between repositories reaches ones branchmig does not manage.
    (repo / ".git" / "branchmig" / "hook.conf").unlink()
    checkout = git(repo, "checkout", "-q", "feature")
    assert checkout.stderr == ""
    assert fake_python.calls() == []


@pytest.mark.parametrize(
    ("waiting", "runs"),
    [
        ({"restore-on.list": "x\nx/y\n"}, True),
        ({"restore-on.list": "x\nX/y\n"}, False),  # another case is another branch
        ({"restore-on/x/y": ""}, True),  # an earlier branchmig's file, until the list
        ({}, False),
    ],
)
def test_the_hook_starts_python_for_a_branch_whose_snapshot_waits(
    tmp_path: Path, waiting: dict[str, str], runs: bool
) -> None:
    """A checkout onto the same commit (nothing to migrate) starts branchmig only for a
    branch listed, by exact name, as waiting for its snapshot."""
    from gitutil import make_alembic_repo, run_branchmig

    repo = make_alembic_repo(tmp_path / "project")
    assert run_branchmig(repo.root, "install").returncode == 0
    state = repo.root / ".git" / "branchmig"
    ran = tmp_path / "ran"
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\necho "$@" >>"{ran}"\n')
    python.chmod(0o755)
    conf = state / "hook.conf"
    lines = conf.read_text().splitlines()
    conf.write_text(
        "\n".join(f"python={python}" if ln.startswith("python=") else ln for ln in lines) + "\n"
    )
    for name, text in waiting.items():
        (state / name).parent.mkdir(parents=True, exist_ok=True)
        (state / name).write_text(text)
    repo.git("branch", "x/y")

    repo.checkout("x/y")

    assert ran.exists() == runs
