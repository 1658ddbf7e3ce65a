"""GitRepo's named git questions, on real repositories: the ones merge-heads, the hook
installer and the demo ask."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from gitutil import BRANCHMIG, git, git_env, init_repo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from branchmig.errors import GitError, NotARepositoryError
from branchmig.gitrepo import GitRepo, RepoFormat, is_null_id
from branchmig.gitrepo.files import found_in_files


def write(root: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def commit(root: Path, message: str, files: dict[str, str]) -> str:
    write(root, files)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


@pytest.fixture
def repo_with_one_script(tmp_path: Path) -> Path:
    """main: v/a.py (a migration script, long enough for git to see a rename) and app.py."""
    root = init_repo(tmp_path / "repo")
    commit(root, "base", {"v/a.py": "revision = 'a'\n" * 20, "app.py": "1\n"})
    return root


@pytest.fixture
def repo_with_merged_feature(repo_with_one_script: Path) -> Path:
    """main, one commit on, has merged ``feature`` (which added v/b.py) with a merge commit."""
    root = repo_with_one_script
    git(root, "checkout", "-q", "-b", "feature")
    commit(root, "script b", {"v/b.py": "revision = 'b'\n"})
    git(root, "checkout", "-q", "main")
    commit(root, "app", {"app.py": "2\n"})
    git(root, "merge", "-q", "--no-edit", "feature")
    return root


# -- the working tree ------------------------------------------------------------------------


def test_a_staged_rename_is_named_by_its_new_name(repo_with_one_script: Path) -> None:
    root = repo_with_one_script
    git(root, "mv", "v/a.py", "v/new_name.py")
    repo = GitRepo.discover(root)

    assert repo.dirty_paths("v") == ["v/new_name.py"]
    # Staged, and not changed since: what git staged itself during a merge looks the same.
    assert repo.dirty_paths("v", staged=False) == []
    (root / "v" / "new_name.py").write_text("edited\n" * 20)
    assert repo.dirty_paths("v", staged=False) == ["v/new_name.py"]


def test_a_rename_in_the_working_tree_is_named_by_its_new_name(repo_with_one_script: Path) -> None:
    # `git add -N` makes git report the rename in the second status column.
    root = repo_with_one_script
    (root / "v" / "a.py").rename(root / "v" / "moved.py")
    git(root, "add", "-N", "v/moved.py")

    repo = GitRepo.discover(root)

    assert repo.dirty_paths() == ["v/moved.py"]
    assert repo.dirty_paths(staged=False) == ["v/moved.py"]


def test_dirty_paths_counts_untracked_files_and_only_unstaged_changes_without_staged(
    repo_with_one_script: Path,
) -> None:
    root = repo_with_one_script
    write(root, {"v/new.py": "x\n", "app.py": "2\n", "v/a.py": "changed\n"})
    git(root, "add", "app.py")
    repo = GitRepo.discover(root)

    assert sorted(repo.dirty_paths()) == ["app.py", "v/a.py", "v/new.py"]
    assert sorted(repo.dirty_paths("v")) == ["v/a.py", "v/new.py"]
    assert sorted(repo.dirty_paths(staged=False)) == ["v/a.py", "v/new.py"]


def test_asking_what_changed_writes_nothing_to_the_index(repo_with_one_script: Path) -> None:
    """``git status`` writes back the stat data it refreshes, under ``.git/index.lock``;
    branchmig's questions take no such lock, so killing branchmig mid-question (a kill of
    the terminal's process group) cannot leave one that fails every git command after."""
    root = repo_with_one_script
    script = root / "v" / "a.py"
    stat = script.stat()
    os.utime(script, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # stale stat
    index = (root / ".git" / "index").read_bytes()

    assert GitRepo.discover(root).dirty_paths() == []

    assert (root / ".git" / "index").read_bytes() == index
    git(root, "status", "--porcelain")  # as git itself does, for contrast
    assert (root / ".git" / "index").read_bytes() != index


def test_unmerged_paths_are_the_conflicted_files(repo_with_one_script: Path) -> None:
    root = repo_with_one_script
    git(root, "checkout", "-q", "-b", "other")
    commit(root, "other", {"v/a.py": "other\n", "app.py": "other\n"})
    git(root, "checkout", "-q", "main")
    commit(root, "main", {"v/a.py": "main\n", "app.py": "main\n"})
    repo = GitRepo.discover(root)
    assert repo.unmerged_paths() == []

    with pytest.raises(AssertionError):
        git(root, "merge", "-q", "other")

    assert repo.unmerged_paths() == ["app.py", "v/a.py"]
    assert repo.unmerged_paths("v") == ["v/a.py"]


# -- history --------------------------------------------------------------------------------


def test_merge_questions_on_a_merged_feature(repo_with_merged_feature: Path) -> None:
    root = repo_with_merged_feature
    merge = git(root, "rev-parse", "HEAD").strip()
    first, second = git(root, "rev-parse", "HEAD^1", "HEAD^2").split()
    added_b = git(root, "rev-parse", "feature").strip()
    repo = GitRepo.discover(root)

    assert repo.latest_merge("HEAD") == merge
    assert repo.latest_merge("feature") is None
    assert repo.parents(merge) == [first, second]
    assert repo.commit_adding("v/b.py") == added_b
    assert repo.commit_adding("v/b.py", "HEAD^1") is None
    assert repo.refs_containing(added_b, "refs/heads") == ["feature", "main"]
    assert repo.refs_containing(added_b, "refs/remotes") == []
    assert repo.count_commits(added_b, "main") == 2  # the merge, and main's own commit
    assert repo.count_commits(added_b, "no-such-branch") == 0


def test_head_reflog_is_newest_first_with_git_s_subjects(repo_with_merged_feature: Path) -> None:
    root = repo_with_merged_feature
    repo = GitRepo.discover(root)

    entries = repo.head_reflog(2)

    assert [commit for commit, _ in entries] == [
        git(root, "rev-parse", "HEAD").strip(),
        git(root, "rev-parse", "HEAD^1").strip(),
    ]
    assert entries[0][1].startswith("merge feature")
    assert entries[1][1] == "commit: app"


# -- setting a repository up (branchmig demo) ------------------------------------------------


def test_init_commit_and_branches_of_a_new_repository(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "new", branch="main")
    repo.set_config("user.name", "demo")
    repo.set_config("user.email", "demo@example.invalid")
    write(repo.top, {"a.txt": "a\n"})
    repo.commit_all("first")
    repo.checkout_new_branch("feature")
    write(repo.top, {"b.txt": "b\n"})
    repo.commit_all("second")
    repo.checkout_new_branch("other", "main")

    assert repo.top == (tmp_path / "new").resolve()
    assert repo.current_branch() == "other"
    assert not (repo.top / "b.txt").exists()
    assert "Switched to branch 'feature'" in repo.checkout("feature", quiet=False)
    assert repo.checkout("main") == ""
    assert repo.dirty_paths() == []
    assert git(repo.top, "log", "--format=%an %s", "feature").splitlines() == [
        "demo second",
        "demo first",
    ]


def test_a_failed_checkout_says_why(repo_with_one_script: Path) -> None:
    repo = GitRepo.discover(repo_with_one_script)
    with pytest.raises(GitError, match="git checkout nowhere failed: error: pathspec"):
        repo.checkout("nowhere")


# -- where the repository is ----------------------------------------------------------------


def test_the_caller_s_git_variables_do_not_redirect_git(
    repo_with_one_script: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hook runs with the outer git's GIT_INDEX_FILE...: they may name another repo.
    # (GIT_DIR and GIT_WORK_TREE name the repository, as git has them: tests below.)
    elsewhere = init_repo(tmp_path / "elsewhere")
    monkeypatch.setenv("GIT_INDEX_FILE", str(elsewhere / ".git" / "index"))
    monkeypatch.setenv("GIT_OBJECT_DIRECTORY", str(elsewhere / ".git" / "objects"))
    monkeypatch.setenv("GIT_COMMON_DIR", str(elsewhere / ".git"))

    repo = GitRepo.discover(repo_with_one_script / "v")

    assert repo.top == repo_with_one_script
    assert repo.current_branch() == "main"
    assert repo.dirty_paths() == []
    assert repo.hooks_dir() == repo_with_one_script / ".git" / "hooks"


def test_hooks_dir_honours_core_hooks_path_relative_to_the_top_level(
    repo_with_one_script: Path, tmp_path: Path
) -> None:
    root = repo_with_one_script
    git(root, "config", "core.hooksPath", "tools/hooks")
    assert GitRepo.discover(root / "v").hooks_dir() == root / "tools" / "hooks"
    git(root, "config", "core.hooksPath", str(tmp_path / "shared"))
    assert GitRepo.discover(root).hooks_dir() == tmp_path / "shared"


def test_a_linked_worktree_shares_the_common_hooks(
    repo_with_one_script: Path, tmp_path: Path
) -> None:
    root = repo_with_one_script
    git(root, "worktree", "add", "-q", str(tmp_path / "wt"), "-b", "wt")

    repo = GitRepo.discover(tmp_path / "wt")

    assert repo.top == tmp_path / "wt"
    assert repo.common_dir == root / ".git"
    assert repo.hooks_dir() == root / ".git" / "hooks"


def test_discover_outside_a_repository_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(NotARepositoryError, match="is not inside a git repository"):
        GitRepo.discover(tmp_path)


# -- refs read from git's files, as the hook reads them --------------------------------------

_REF_STEPS = st.lists(
    st.sampled_from(
        ["branch", "nested", "switch-back", "detach", "commit", "pack", "loose-again", "orphan"]
    ),
    min_size=1,
    max_size=7,
)


def _answer(start: Path, *args: str) -> str:
    """What git prints for ``args`` in ``start`` (nothing when it fails)."""
    proc = subprocess.run(
        ["git", "-C", str(start), *args], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip()


def _git_says(root: Path) -> tuple[str | None, str | None]:
    """HEAD's commit and branch, as git answers them."""
    head = _answer(root, "rev-parse", "--verify", "--quiet", "HEAD")
    branch = _answer(root, "symbolic-ref", "--quiet", "--short", "HEAD")
    return head or None, branch or None


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=_REF_STEPS)
def test_refs_read_from_files_agree_with_git(
    tmp_path_factory: pytest.TempPathFactory, steps: list[str]
) -> None:
    """HEAD's commit, its branch, which names are branches and the last checkout: read
    from .git's files where they say it plainly (loose refs), from git otherwise (packed
    refs, an unborn branch), always what git itself answers."""
    root = init_repo(tmp_path_factory.mktemp("refs") / "repo")
    commit(root, "base", {"a.txt": "0\n"})
    for number, step in enumerate(steps):
        if step == "branch":
            git(root, "checkout", "-q", "-b", f"b{number}")
        elif step == "nested":
            git(root, "checkout", "-q", "-b", f"team/feature-{number}")
        elif step == "switch-back":
            git(root, "checkout", "-q", "main")
        elif step == "detach":
            if _git_says(root)[0] is not None:  # not on an unborn branch
                git(root, "checkout", "-q", "--detach")
        elif step == "commit":
            commit(root, f"c{number}", {"a.txt": f"step {number}\n"})
        elif step == "pack":
            git(root, "pack-refs", "--all")
        elif step == "loose-again":
            if _git_says(root)[1] is not None:
                commit(root, f"l{number}", {"b.txt": f"loose {number}\n"})  # a loose ref again
        elif step == "orphan":
            git(root, "checkout", "-q", "--orphan", f"o{number}")
            git(root, "rm", "-rfq", "--ignore-unmatch", ".")  # an empty, clean tree
        repo = GitRepo.discover(root)

        head, branch = _git_says(root)
        assert repo.head_commit() == head
        assert repo.current_branch() == branch
        names = git(root, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()
        for name in [*names, "main", "no-such-branch", "../config", "team"]:
            assert repo.is_branch(name) == (name in names), name
        moves = repo.checkouts(limit=1)
        assert repo.last_checkout() == ((moves[0][1], moves[0][2]) if moves else None)


def _git_finds(start: Path) -> tuple[Path, Path, Path]:
    top, git_dir = _answer(start, "rev-parse", "--show-toplevel", "--absolute-git-dir").split("\n")
    common = _answer(start, "rev-parse", "--path-format=absolute", "--git-common-dir")
    return Path(top), Path(git_dir), Path(common)


def test_the_repository_is_found_from_git_s_files_as_git_finds_it(
    repo_with_one_script: Path, tmp_path: Path
) -> None:
    """Every command starts by finding the repository: from the .git entries on the way
    up (no git process) where they say it plainly, always what git itself finds."""
    root = repo_with_one_script
    git(root, "worktree", "add", "-q", str(tmp_path / "wt"), "-b", "wt")
    (tmp_path / "wt" / "v" / "deep").mkdir()
    sub_source = init_repo(tmp_path / "sub-source")
    commit(sub_source, "s", {"s.txt": "s\n"})
    git(root, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub_source), "sub")
    (tmp_path / "link").symlink_to(root)
    for start in (
        root,
        root / "v",
        tmp_path / "wt",
        tmp_path / "wt" / "v" / "deep",
        tmp_path / "link" / "v",
    ):
        found = found_in_files(start)
        assert found is not None, start
        assert found == _git_finds(start), start
        repo = GitRepo.discover(start)
        assert (repo.top, repo.git_dir, repo.common_dir) == found
    # A submodule's git dir names its working tree (core.worktree): git is asked.
    assert found_in_files(root / "sub") is None
    repo = GitRepo.discover(root / "sub")
    assert (repo.top, repo.git_dir, repo.common_dir) == _git_finds(root / "sub")


def test_git_is_asked_where_it_might_find_otherwise(
    repo_with_one_script: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = repo_with_one_script
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert found_in_files(root / "v") is None
    monkeypatch.delenv("GIT_CEILING_DIRECTORIES")
    git(root, "config", "core.worktree", str(root))
    assert found_in_files(root / "v") is None
    assert GitRepo.discover(root / "v").top == root  # git's own answer
    git(root, "config", "--unset", "core.worktree")
    assert found_in_files(root / "v") is not None
    with open(root / ".git" / "config", "a") as config:
        config.write("[include]\n\tpath = other.config\n")
    assert found_in_files(root / "v") is None


# -- the repository's format ----------------------------------------------------------------


@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
def test_blob_ids_and_the_null_id_are_those_of_the_repository_s_object_format(
    tmp_path: Path, object_format: str
) -> None:
    root = init_repo(tmp_path / "repo", object_format=object_format)
    commit(root, "base", {"v/a.py": "revision = 'a'\n"})
    repo = GitRepo.discover(root)

    assert repo.format == RepoFormat(object_format, "files")
    [entry] = repo.ls_tree(repo.resolve("HEAD"), ["v"])
    data = (root / "v" / "a.py").read_bytes()
    assert repo.blob_id(data) == entry.blob == git(root, "hash-object", "v/a.py").strip()
    assert is_null_id("0" * len(entry.blob)) and not is_null_id(entry.blob)


def _git_runs(trace: Path) -> list[str]:
    lines = trace.read_text().splitlines() if trace.exists() else []
    return [ln.split("trace: built-in: ", 1)[1] for ln in lines if "trace: built-in: " in ln]


def test_refs_kept_elsewhere_than_in_files_are_asked_of_git(
    repo_with_merged_feature: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``extensions.refStorage`` other than files (reftable: HEAD a stub, refs in tables):
    HEAD, branches and the reflog come from git, never from .git's files. Faked in a
    version-0 repository, whose extensions git 2.39 ignores, so git still answers."""
    root = repo_with_merged_feature
    trace = tmp_path / "trace"
    monkeypatch.setenv("GIT_TRACE", str(trace))
    plain = GitRepo.discover(root)
    head = plain.head_commit()
    answers = (head, plain.current_branch(), plain.is_branch("feature"), plain.last_checkout())
    assert _git_runs(trace) == []  # read from the files

    git(root, "config", "extensions.refStorage", "reftable")
    repo = GitRepo.discover(root)
    assert repo.format.ref_storage == "reftable"
    assert (repo.head_commit(), repo.current_branch()) == answers[:2]
    assert (repo.is_branch("feature"), repo.last_checkout()) == answers[2:]
    assert repo.reflog_size() == -1 and repo.checkouts_after(0) is None
    asked = _git_runs(trace)
    assert any(run.startswith("git rev-parse") and "HEAD" in run for run in asked), asked
    assert any(run.startswith("git symbolic-ref") for run in asked), asked
    assert any(run.startswith("git reflog") for run in asked), asked


def test_a_repository_format_this_git_cannot_read_is_refused_with_git_s_message(
    repo_with_one_script: Path,
) -> None:
    root = repo_with_one_script
    git(root, "config", "core.repositoryformatversion", "1")
    git(root, "config", "extensions.refStorage", "reftable")

    with pytest.raises(GitError, match="unknown repository extension found: refstorage$"):
        GitRepo.discover(root)
    proc = subprocess.run(
        [BRANCHMIG, "heads", "main"], cwd=root, env=git_env(), capture_output=True, text=True
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "branchmig: git rev-parse --git-dir failed: fatal: unknown repository extension "
        "found: refstorage"
    ], proc.stderr


@settings(
    max_examples=8, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(data=st.data())
def test_branches_containing_each_agrees_with_asking_one_by_one(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Random histories (branches made from any commit, merges, branches deleted): the
    batched answer ``status`` uses is git's own ``for-each-ref --contains`` per commit."""
    root = init_repo(tmp_path_factory.mktemp("contains") / "repo")
    commits = [commit(root, "root", {"f": "0"})]
    for n in range(data.draw(st.integers(3, 10), label="steps")):
        start = data.draw(st.sampled_from(commits), label="from")
        git(root, "checkout", "-q", "-B", f"b{n}", start)
        if len(commits) > 2 and data.draw(st.booleans(), label="merge"):
            other = data.draw(st.sampled_from(commits), label="with")
            git(root, "merge", "-q", "--no-edit", "-s", "ours", other)
            commits.append(git(root, "rev-parse", "HEAD").strip())
        commits.append(commit(root, f"c{n}", {"f": f"c{n}"}))
    git(root, "checkout", "-q", "--detach")
    for name in data.draw(st.lists(st.sampled_from([f"b{n}" for n in range(3)]), unique=True)):
        git(root, "branch", "-q", "-D", name)
    asked = data.draw(st.lists(st.sampled_from(commits), min_size=1, unique=True), label="asked")
    repo = GitRepo.discover(root)
    assert repo.branches_containing_each(asked) == {
        c: sorted(repo.branches_containing(c)) for c in asked
    }
