"""Reading migration script headers with ast, at git refs and in the working tree."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from gitutil import Repo, script_text

from branchmig import cache as cache_mod
from branchmig import scripts as scripts_mod
from branchmig.errors import ScriptError
from branchmig.gitrepo import GitRepo
from branchmig.scripts import (
    HeaderCache,
    ScriptSetCache,
    cache_for,
    parse_header,
    read_ref,
    read_worktree,
)
from branchmig.workspace import Workspace

VERSIONS = ("alembic/versions",)


def header(text: str, path: str = "v/x.py") -> dict[str, object] | None:
    return parse_header(text.encode(), path)


def ids(repo: Repo, ref: str | None = None) -> dict[str, tuple[str, ...]]:
    """{revision: down revisions} as read at ``ref`` (None: the working tree)."""
    with GitRepo.discover(repo.root) as git_repo:
        cache = cache_for(git_repo)
        if ref is None:
            found = read_worktree(
                git_repo.top, VERSIONS, recursive=False, cache=cache, object_format="sha1"
            )
        else:
            found = read_ref(
                git_repo, git_repo.resolve(ref), VERSIONS, recursive=False, cache=cache
            )
    return {r.id: r.down for r in found.revisions}


# -- header forms ---------------------------------------------------------------------------


@pytest.mark.parametrize("annotated", [True, False])
def test_plain_and_annotated_headers_read_the_same(annotated: bool) -> None:
    text = script_text("ab12", ("a", "b"), labels="feature", depends=["c"], annotated=annotated)
    assert header(text) == {
        "revision": "ab12",
        "down": ["a", "b"],
        "labels": ["feature"],
        "depends": ["c"],
        "warnings": [],
    }


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("None", []),
        ("'a'", ["a"]),
        ("('a',)", ["a"]),
        ("['a', 'b']", ["a", "b"]),
        ("('a', 'b', 'c')", ["a", "b", "c"]),
        ("u'a'", ["a"]),
    ],
)
def test_down_revision_literal_forms(literal: str, expected: list[str]) -> None:
    found = header(f"revision = 'r'\ndown_revision = {literal}\n")
    assert found is not None and found["down"] == expected


def test_multi_line_tuple_with_comments_and_annotation() -> None:
    text = (
        '"""merge"""\n'
        "revision: str = 'm1'  # the merge\n"
        "down_revision: Union[str, Sequence[str], None] = (\n"
        "    'a',  # feature one\n"
        "    # a comment line inside\n"
        '    "b",\n'
        ")\n"
        "branch_labels = None\n"
        "depends_on = \\\n"
        "    'c'\n"
    )
    found = header(text)
    assert found is not None
    assert (found["revision"], found["down"], found["depends"]) == ("m1", ["a", "b"], ["c"])


def test_crlf_line_endings() -> None:
    found = header(script_text("r2", "r1").replace("\n", "\r\n"))
    assert found is not None and (found["revision"], found["down"]) == ("r2", ["r1"])


def test_python2_body_with_a_good_header_is_analysed() -> None:
    text = script_text("py2", "base", upgrade='print "upgrading"\n    exec "x = 1"')
    found = header(text)
    assert found is not None and (found["revision"], found["down"]) == ("py2", ["base"])


def test_non_hex_ids_are_kept_as_written() -> None:
    found = header(script_text("kilo", "add_users_table_2024"))
    assert found is not None and (found["revision"], found["down"]) == (
        "kilo",
        ["add_users_table_2024"],
    )


def test_non_literal_revision_names_file_and_line() -> None:
    text = "import uuid\n\nrevision = uuid.uuid4().hex[:12]\ndown_revision = None\n"
    with pytest.raises(ScriptError) as err:
        header(text, "alembic/versions/bad.py")
    assert str(err.value).startswith("alembic/versions/bad.py:3: revision is not a literal")


def test_non_literal_down_revision_is_an_error() -> None:
    with pytest.raises(ScriptError, match=r"^v/x.py:2: down_revision is not a literal"):
        header("revision = 'r'\ndown_revision = PARENT\n")


def test_syntax_error_in_a_header_names_the_line() -> None:
    text = "revision = 'r'\ndown_revision = ('a',\n    'b'\n\ndef upgrade():\n    pass\n"
    with pytest.raises(ScriptError, match=r"^v/x.py:\d+: cannot parse the 'down_revision'"):
        header(text)


def test_non_literal_branch_labels_is_a_warning_not_a_failure() -> None:
    text = (
        "from app.consts import EXPAND\nrevision = 'e1'\ndown_revision = None\n"
        "branch_labels = (EXPAND,)\ndepends_on = None\n"
    )
    found = header(text, "v/e1.py")
    assert found is not None
    assert found["labels"] == []
    assert found["warnings"] == [
        "v/e1.py:4: branch_labels is not a literal ((EXPAND,)); treated as unknown"
    ]


def test_wrong_type_is_an_error() -> None:
    with pytest.raises(ScriptError, match="down_revision must be None, a string or a tuple"):
        header("revision = 'r'\ndown_revision = 3\n")


@pytest.mark.parametrize(
    "text",
    ["def helper():\n    return 1\n", "# revision = 'x' in a comment\nREVISION = 'y'\n", ""],
)
def test_a_python_file_without_revision_fails_as_alembic_fails(text: str) -> None:
    """Alembic loads every .py file of the versions folder and stops at one without a
    revision ("Could not determine revision id from filename")."""
    with pytest.raises(ScriptError, match=r"^v/helpers.py: no 'revision' assignment; Alembic"):
        header(text, "v/helpers.py")


def test_a_script_named_by_its_revision_reads_as_alembic_0_1s() -> None:
    found = header("down_revision = None\n", "v/ae1027a6acf.py")
    assert found is not None and (found["revision"], found["down"]) == ("ae1027a6acf", [])


def test_a_script_without_down_revision_fails_as_alembic_fails() -> None:
    with pytest.raises(ScriptError, match=r"^v/x.py: no 'down_revision' assignment"):
        header("revision = 'r'\n")


def test_a_syntax_error_without_a_revision_names_the_line() -> None:
    text = "import sqlalchemy as sa\n\ndef upgrade(:\n    pass\n"
    with pytest.raises(ScriptError, match=r"^v/x.py:3: invalid syntax; Alembic cannot load"):
        header(text)


def test_a_syntax_error_in_the_body_of_a_readable_script_is_left_to_alembic() -> None:
    """Old histories hold scripts whose bodies parse only as Python 2: their headers are
    read, whatever form they take."""
    body = "\ndef upgrade():\n    print 'up'\n"
    for head in (
        "revision = 'p2'; down_revision = 'p1'",
        "revision, down_revision = 'p2', 'p1'",
        "revision = 'p2'\nbranch_labels = depends_on = None\ndown_revision = 'p1'",
    ):
        found = header(head + body)
        assert found is not None and (found["revision"], found["down"]) == ("p2", ["p1"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("revision = 'm1'; down_revision = 'm0'\n", ("m1", ["m0"], [], [])),
        ("revision, down_revision = 'b1', 'a1'\n", ("b1", ["a1"], [], [])),
        ("(revision, down_revision) = ['b1', ('a1', 'a2')]\n", ("b1", ["a1", "a2"], [], [])),
        (
            "revision = 'r'\ndown_revision = None\nbranch_labels = depends_on = 'x'\n",
            ("r", [], ["x"], ["x"]),
        ),
        ("revision, *down_revision = 'r', 'a', 'b'\n", ("r", ["a", "b"], [], [])),
        ("revision, down_revision = 'ra'\n", ("r", ["a"], [], [])),
        ("x = 1; revision: str = 'r'; down_revision = None\n", ("r", [], [], [])),
        ("(revision := 'w')\ndown_revision = None\n", ("w", [], [], [])),
        ("revision = 'old'\ndown_revision = None\nrevision = 'new'\n", ("new", [], [], [])),
        (
            "revision = 'r'\ndown_revision = None\nx = [revision for revision in 'ab']\n",
            ("r", [], [], []),
        ),
        (
            "revision = 'r'\ndown_revision = None\nif TYPE_CHECKING:\n    revision: str\n",
            ("r", [], [], []),
        ),
    ],
)
def test_every_form_alembic_reads(text: str, expected: tuple[object, ...]) -> None:
    found = header(text)
    assert found is not None
    assert (found["revision"], found["down"], found["labels"], found["depends"]) == expected


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("revision = 'r'\nif True:\n    down_revision = None\n", 3),
        ("revision = 'r'\ndown_revision = None\nfor depends_on in ['a']:\n    pass\n", 3),
        ("revision = 'r'\ndown_revision = None\nfrom app import branch_labels\n", 3),
        ("revision = 'r'\ntry:\n    down_revision = None\nexcept ImportError:\n    pass\n", 3),
        ("revision = 'r'\ndown_revision = None\ndef revision():\n    pass\n", 3),
        ("revision = 'r'\ndown_revision = None\nrevision += 'x'\n", 3),
        ("revision = 'r'\ndown_revision = None\nx = (depends_on := 'a')\n", 3),
        ("revision = 'r'\ndown_revision = None\ndel revision\n", 3),
    ],
)
def test_other_bindings_of_a_header_name_name_the_file_and_line(text: str, line: int) -> None:
    with pytest.raises(ScriptError, match=rf"^v/x.py:{line}: '\w+' is bound in a form"):
        header(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("revision, down_revision = pick()\n", r"^v/x.py:1: revision is not a literal"),
        ("revision, down_revision = 'a', 'b', 'c'\n", r"^v/x.py:1: 3 values to unpack into 2"),
        ("revision, down_revision = None\n", r"^v/x.py:1: cannot unpack NoneType"),
    ],
)
def test_unpacking_that_cannot_be_read_names_the_line(text: str, message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        header(text)


def test_indented_assignments_are_not_headers() -> None:
    text = "revision = 'r'\ndown_revision = None\n\ndef f():\n    revision = 'other'\n"
    found = header(text)
    assert found is not None and found["revision"] == "r"


# -- reading a ref and the working tree -----------------------------------------------------


def test_non_migrations_in_the_versions_folder_are_skipped(empty_alembic_repo: Repo) -> None:
    repo = empty_alembic_repo
    repo.write("a1", None)
    (repo.versions / "__init__.py").write_text("revision = 'not me'\n")
    (repo.versions / "README").write_text("revision = 'nor me'\n")
    (repo.versions / "__init__old.py").write_text("def f(:\n")
    (repo.versions / ".#a1_step.py").write_text("")
    (repo.versions / "notes.txt").write_text("")
    repo.commit("scripts and others")
    assert ids(repo, "HEAD") == {"a1": ()}
    assert ids(repo) == {"a1": ()}


def test_a_helper_in_the_versions_folder_is_reported_as_alembic_does(
    empty_alembic_repo: Repo,
) -> None:
    repo = empty_alembic_repo
    repo.write("a1", None)
    (repo.versions / "helpers.py").write_text("def table_name():\n    return 't'\n")
    repo.commit("a helper Alembic fails on")
    for ref in ("HEAD", None):
        with pytest.raises(ScriptError, match="^alembic/versions/helpers.py: no 'revision'"):
            ids(repo, ref)


def test_scripts_are_never_imported(empty_alembic_repo: Repo, tmp_path: Path) -> None:
    repo = empty_alembic_repo
    marker = tmp_path / "imported"
    top = (
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "import nonexistent_module_xyz\nraise SystemExit('imported!')"
    )
    repo.write("boom", None, top=top)
    repo.commit("a script that must not be imported")
    assert ids(repo, "HEAD") == {"boom": ()}
    assert ids(repo) == {"boom": ()}
    assert not marker.exists()


def test_working_tree_includes_uncommitted_and_untracked_scripts(
    repo_with_linear_history: Repo,
) -> None:
    repo = repo_with_linear_history
    repo.write("a3", "a1", name="a3_step.py")  # uncommitted edit: rebased onto a1
    repo.write("new1", "a3")  # untracked
    (repo.versions / "a2_step.py").unlink()  # deleted, not committed
    assert ids(repo) == {"a1": (), "a3": ("a1",), "new1": ("a3",)}
    assert ids(repo, "HEAD") == {"a1": (), "a2": ("a1",), "a3": ("a2",)}


def test_ref_reading_sees_each_branch(repo_with_two_feature_branches: Repo) -> None:
    repo = repo_with_two_feature_branches
    assert set(ids(repo, "feature1")) == {"a1", "a2", "a3", "f1a", "f1b"}
    assert set(ids(repo, "feature2")) == {"a1", "a2", "a3", "f2a"}
    assert set(ids(repo, "main")) == {"a1", "a2", "a3"}


def test_recursive_version_folders(empty_alembic_repo: Repo) -> None:
    repo = empty_alembic_repo
    (repo.versions / "2024").mkdir()
    (repo.versions / "2024" / "b1_step.py").write_text(script_text("b1", "a1"))
    repo.write("a1", None)
    repo.commit("nested")
    with GitRepo.discover(repo.root) as git_repo:
        cache = HeaderCache(None)
        flat = read_ref(git_repo, git_repo.resolve("HEAD"), VERSIONS, recursive=False, cache=cache)
        deep = read_ref(git_repo, git_repo.resolve("HEAD"), VERSIONS, recursive=True, cache=cache)
        deep_wt = read_worktree(
            git_repo.top, VERSIONS, recursive=True, cache=cache, object_format="sha1"
        )
    assert [r.id for r in flat.revisions] == ["a1"]
    assert sorted(r.id for r in deep.revisions) == ["a1", "b1"]
    assert sorted(r.id for r in deep_wt.revisions) == ["a1", "b1"]
    assert {r.path for r in deep.revisions} == {r.path for r in deep_wt.revisions}


def test_blob_ids_of_worktree_and_git_agree(repo_with_linear_history: Repo) -> None:
    repo = repo_with_linear_history
    with GitRepo.discover(repo.root) as git_repo:
        cache = HeaderCache(None)
        at_head = read_ref(
            git_repo, git_repo.resolve("HEAD"), VERSIONS, recursive=False, cache=cache
        )
        in_tree = read_worktree(
            git_repo.top, VERSIONS, recursive=False, cache=cache, object_format="sha1"
        )
    assert {(r.id, r.blob) for r in at_head.revisions} == {
        (r.id, r.blob) for r in in_tree.revisions
    }


# -- the cache ------------------------------------------------------------------------------


@pytest.fixture
def counted_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths parse_header is called for (the real function still runs)."""
    calls: list[str] = []
    real = cache_mod.parse_header

    def counting(data: bytes, path: str) -> dict[str, object] | None:
        calls.append(path)
        return real(data, path)

    monkeypatch.setattr(cache_mod, "parse_header", counting)
    return calls


def test_headers_are_cached_by_blob_id(
    repo_with_linear_history: Repo, counted_parses: list[str]
) -> None:
    repo = repo_with_linear_history
    assert not repo.cache_file.exists()
    first = ids(repo, "HEAD")
    assert len(counted_parses) == 3
    data = json.loads(repo.cache_file.read_text())
    with GitRepo.discover(repo.root) as git_repo:
        listing = git_repo.ls_tree("HEAD", ["alembic/versions"])
    blobs = {
        entry.blob: entry.path.split("/")[-1]
        for entry in listing
        if entry.path.endswith("_step.py")
    }
    assert {blob: h["revision"] for blob, h in data["headers"].items()} == {
        blob: name.split("_")[0] for blob, name in blobs.items()
    }
    assert ids(repo, "HEAD") == first
    assert len(counted_parses) == 3  # second read: nothing parsed again
    # Another ref holding the same blobs parses only the new script.
    repo.checkout("other", new=True)
    repo.write("b1", "a3")
    repo.commit("b1")
    ids(repo, "other")
    assert counted_parses[3:] == ["alembic/versions/b1_step.py"]


def test_worktree_shares_the_cache_with_git_objects(
    repo_with_linear_history: Repo, counted_parses: list[str]
) -> None:
    repo = repo_with_linear_history
    ids(repo, "HEAD")
    assert ids(repo) == {"a1": (), "a2": ("a1",), "a3": ("a2",)}
    assert len(counted_parses) == 3  # same blobs: the working tree parsed nothing


def test_an_edit_of_the_same_size_is_seen_at_once(repo_with_linear_history: Repo) -> None:
    repo = repo_with_linear_history
    path = repo.versions / "a3_step.py"
    assert ids(repo)["a3"] == ("a2",)
    path.write_text(
        path.read_text().replace(
            "down_revision: Union[str, Sequence[str], None] = 'a2'",
            "down_revision: Union[str, Sequence[str], None] = 'a1'",
        )
    )
    assert ids(repo)["a3"] == ("a1",)


def test_an_old_file_is_trusted_by_its_stat(
    repo_with_linear_history: Repo, counted_parses: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = repo_with_linear_history
    monkeypatch.setattr(cache_mod, "RACY_NS", 50_000_000)
    time.sleep(0.1)  # older than the (shortened) racy window, by mtime and ctime
    ids(repo)
    stats = json.loads(repo.cache_file.read_text())["stats"]
    assert set(stats) == {f"alembic/versions/a{i}_step.py" for i in (1, 2, 3)}


def test_a_broken_cache_file_is_ignored(repo_with_linear_history: Repo) -> None:
    repo = repo_with_linear_history
    repo.cache_file.parent.mkdir(parents=True)
    repo.cache_file.write_text("{not json")
    assert set(ids(repo, "HEAD")) == {"a1", "a2", "a3"}
    assert json.loads(repo.cache_file.read_text())["version"] == scripts_mod.CACHE_VERSION


# -- whole script sets, remembered by signature ------------------------------------------


def ws_ids(repo: Repo, ref: str = "") -> dict[str, tuple[str, ...]]:
    """{revision: down revisions} as a Workspace reads them ("" : the working tree)."""
    ws = Workspace.open(repo.root)
    try:
        return {r.id: r.down for r in ws.scripts_at(ref).revisions}
    finally:
        ws.close()


def script_set_files(repo: Repo) -> list[Path]:
    return sorted((repo.root / ".git" / "branchmig" / "cache" / "script-sets").glob("*"))


def test_a_ref_read_again_comes_from_its_script_set(
    repo_with_linear_history: Repo, counted_parses: list[str]
) -> None:
    repo = repo_with_linear_history
    first = ws_ids(repo, "HEAD")
    assert len(script_set_files(repo)) == 1
    repo.cache_file.unlink()  # the header cache is not needed for a set already read
    assert ws_ids(repo, "HEAD") == first
    assert len(counted_parses) == 3
    repo.write("a4", "a3")
    repo.commit("a4")  # a new tree id: a new set
    assert ws_ids(repo, "HEAD") == {**first, "a4": ("a3",)}
    assert len(script_set_files(repo)) == 2


def test_an_edited_working_tree_is_read_again(repo_with_linear_history: Repo) -> None:
    repo = repo_with_linear_history
    old = 1_600_000_000
    for path in repo.versions.glob("*.py"):
        os.utime(path, (old, old))
    assert ws_ids(repo)["a3"] == ("a2",)
    path = repo.versions / "a3_step.py"
    path.write_text(path.read_text().replace("= 'a2'", "= 'a1'"))
    os.utime(path, (old + 10, old + 10))
    assert ws_ids(repo)["a3"] == ("a1",)


def test_a_broken_script_set_file_is_ignored(repo_with_linear_history: Repo) -> None:
    repo = repo_with_linear_history
    first = ws_ids(repo, "HEAD")
    for path in script_set_files(repo):
        path.write_bytes(b"\x00not marshal")
    assert ws_ids(repo, "HEAD") == first


def test_only_the_latest_script_sets_are_kept(
    repo_with_linear_history: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = repo_with_linear_history
    monkeypatch.setattr(ScriptSetCache, "KEEP", 2)
    for i in range(4, 8):
        repo.write(f"a{i}", f"a{i - 1}")
        repo.commit(f"a{i}")
        ws_ids(repo, "HEAD")
    assert len(script_set_files(repo)) == 2


def test_a_file_just_written_is_signed_by_its_content(
    repo_with_linear_history: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkout rewrites a branch's scripts just before the hook reads them: too recent
    for their stat to be trusted, they count by their content, so a return to a branch
    finds the set it read last time instead of reading the tree again."""
    repo = repo_with_linear_history
    old = 1_600_000_000
    for path in repo.versions.glob("*.py"):
        os.utime(path, (old, old))
    reads: list[object] = []
    real_read = scripts_mod.read_worktree

    def counted_read(*args: object, **kwargs: object) -> object:
        reads.append(args)
        return real_read(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("branchmig.workspace.read_worktree", counted_read)
    path = repo.versions / "a3_step.py"
    text = path.read_text()
    path.unlink()
    path.write_text(text)  # as git writes it: a new file, now
    first = ws_ids(repo)
    assert len(reads) == 1
    path.unlink()
    path.write_text(text)  # the same content once more: another inode, another mtime
    assert ws_ids(repo) == first
    assert len(reads) == 1  # known by its content: the tree was not read again
    path.write_text(text.replace("= 'a2'", "= 'a1'"))  # same size, same second
    assert ws_ids(repo)["a3"] == ("a1",)
    assert len(reads) == 2


def test_a_set_read_while_a_recent_file_changed_is_not_remembered(
    repo_with_linear_history: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file signed by its content that changes between the signing and the reading:
    what was read is not remembered under the signature of what was there before."""
    repo = repo_with_linear_history
    path = repo.versions / "a3_step.py"
    before = path.read_text()
    real_read = scripts_mod.read_worktree

    def read_after_an_edit(*args: object, **kwargs: object) -> object:
        path.write_text(before.replace("= 'a2'", "= 'a1'"))
        return real_read(*args, **kwargs)  # type: ignore[arg-type]

    ws = Workspace.open(repo.root)
    try:
        signature = ws.signature()
        monkeypatch.setattr("branchmig.workspace.read_worktree", read_after_an_edit)
        assert {r.id: r.down for r in ws.scripts_at(signature=signature).revisions}["a3"] == ("a1",)
        assert ws.script_sets.get(signature) is None
    finally:
        ws.close()


def test_a_file_changed_within_the_racy_window_by_its_ctime_is_not_trusted(
    repo_with_linear_history: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """git's racy rule, on the ctime as well: a file rewritten with its mtime put back
    moments ago may be rewritten again within the same clock tick, with nothing in its
    stat to tell; it is signed by its content until it is old enough."""
    repo = repo_with_linear_history
    monkeypatch.setattr(cache_mod, "RACY_NS", 50_000_000)
    time.sleep(0.1)
    path = repo.versions / "a3_step.py"
    old = 1_600_000_000
    os.utime(path, (old, old))  # an old mtime; the ctime is now
    ids(repo)
    stats = json.loads(repo.cache_file.read_text())["stats"]
    assert "alembic/versions/a3_step.py" not in stats
    assert "alembic/versions/a2_step.py" in stats
    ws = Workspace.open(repo.root)
    try:
        assert ws.signature().startswith("wt~:")  # signed by content
    finally:
        ws.close()


def test_a_rewrite_with_the_mtime_put_back_is_seen_after_the_racy_window(
    repo_with_linear_history: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rewritten in place (same size, same inode, the mtime put back), then asked about
    once the file is old again: the ctime in the stat tells the file changed."""
    repo = repo_with_linear_history
    monkeypatch.setattr(cache_mod, "RACY_NS", 50_000_000)
    time.sleep(0.1)
    assert ws_ids(repo)["a3"] == ("a2",)
    assert ids(repo)["a3"] == ("a2",)
    path = repo.versions / "a3_step.py"
    before = os.stat(path)
    with open(path, "r+b") as fh:
        fh.write(path.read_bytes().replace(b"= 'a2'", b"= 'a1'"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    time.sleep(0.1)  # old again: trusted by its stat, which must tell the change
    assert ws_ids(repo)["a3"] == ("a1",)  # the signature of the set
    assert ids(repo)["a3"] == ("a1",)  # the header cache's stats
