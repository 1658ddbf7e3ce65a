"""Projects made by ``alembic init --template pyproject``: ``script_location`` and the rest
in pyproject.toml's ``[tool.alembic]``, only the URL and logging in alembic.ini, and
``[tool.branchmig]`` beside ``[tool.alembic]``. Every command reads them as ``alembic``
does, each ref from its own files."""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from pathlib import Path

import pytest
import warm
from e2e_projects import (
    BASE,
    BIN,
    EMAILS,
    F1,
    F2,
    Project,
    copy_project,
    emails,
    insert_users,
    make_seed_project,
    script,
    sqlite_columns,
    sqlite_tables,
    sqlite_version,
)
from gitutil import git_env, init_repo

from branchmig.errors import ConfigError
from branchmig.project import find_project, parse_locations
from branchmig.workspace import Workspace

ALEMBIC = str(BIN / "alembic")
SHOP = "s1a000000001"
SHOP_SCRIPT = script(
    SHOP,
    F2,
    '    op.create_table("shops", sa.Column("id", sa.Integer, primary_key=True))',
    '    op.drop_table("shops")',
)
PYPROJECT = '[project]\nname = "blog"\nversion = "0"\n\n[tool.branchmig]\nexpected_heads = 1\n'


def set_tool_alembic(root: Path, key: str, value: str) -> None:
    """Set ``key = value`` (TOML) first in pyproject.toml's [tool.alembic]."""
    path = root / "pyproject.toml"
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith(f"{key} =")]
    lines.insert(lines.index("[tool.alembic]") + 1, f"{key} = {value}")
    path.write_text("\n".join(lines) + "\n")


def build_pyproject_template(path: Path) -> None:
    """``alembic init --template pyproject migrations`` in a new repository whose
    pyproject.toml has a [tool.branchmig] table already (nothing committed)."""
    init_repo(path)
    (path / "pyproject.toml").write_text(PYPROJECT)
    proc = warm.command(
        [ALEMBIC, "init", "--template", "pyproject", "migrations"], cwd=path, env=git_env()
    )
    assert proc.returncode == 0, proc.stderr
    (path / "migrations" / "versions").mkdir(exist_ok=True)


def make_pyproject_seed(template: Path, dest: Path) -> Project:
    """The seed scenario in the template (``make_seed_project``): BASE on main, F1 on
    feature1, F2 on feature2, all in migrations/versions; main checked out. The template's
    own pyproject.toml is kept."""
    return make_seed_project(template, dest, kind="alembic", versions_dir="migrations/versions")


@pytest.fixture(scope="session")
def _pyproject_states(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Project]:
    base = tmp_path_factory.mktemp("pyproject")
    build_pyproject_template(base / "template")
    fresh = make_pyproject_seed(base / "template", base / "fresh")
    at_f1 = copy_project(fresh, base / "at_f1")
    at_f1.ok("switch", "feature1")
    insert_users(at_f1.db_path)
    return {"fresh": fresh, "at_f1": at_f1}


@pytest.fixture
def pyproject_repo_with_two_feature_branches(
    _pyproject_states: dict[str, Project], tmp_path: Path
) -> Project:
    """The pyproject template with the seed scenario; main checked out, no database."""
    return copy_project(_pyproject_states["fresh"], tmp_path / "project")


@pytest.fixture
def pyproject_db_at_feature1_with_emails(
    _pyproject_states: dict[str, Project], tmp_path: Path
) -> Project:
    """feature1 checked out by ``branchmig switch``, its database at F1 with two users."""
    return copy_project(_pyproject_states["at_f1"], tmp_path / "project")


def heads(p: Project, *args: str) -> list[str]:
    data = json.loads(p.ok(*args, "heads", "--json").stdout)
    return list(data["heads"])


# -- reading the configuration --------------------------------------------------------------


def test_template_is_read_from_tool_alembic_as_alembic_reads_it(
    pyproject_repo_with_two_feature_branches: Project,
) -> None:
    p = pyproject_repo_with_two_feature_branches
    ini = (p.root / "alembic.ini").read_text().splitlines()
    assert not [ln for ln in ini if ln.startswith("script_location")]
    ws = Workspace.open(p.root / "migrations")
    try:
        project = ws.project
        assert (project.kind, project.config_rel, project.toml_rel) == (
            "alembic",
            "alembic.ini",
            "pyproject.toml",
        )
        assert project.settings.expected_heads == 1  # [tool.branchmig] beside [tool.alembic]
        locs = project.locations()
        assert (locs.script_location, locs.version_locations, locs.recursive) == (
            "migrations",
            ("migrations/versions",),
            False,
        )
        assert project.watch_paths() == (
            "alembic.ini",
            "migrations",
            "migrations/versions",
            "pyproject.toml",
        )
        assert "pyproject.toml=" in (ws.signature("main") or "")
    finally:
        ws.close()
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(
        Config(str(p.root / "alembic.ini"), toml_file=str(p.root / "pyproject.toml"))
    )
    assert Path(scripts.dir).resolve() == p.root / "migrations"
    assert scripts._version_locations == [p.root / "migrations" / "versions"]


def test_heads_and_plan(pyproject_repo_with_two_feature_branches: Project) -> None:
    p = pyproject_repo_with_two_feature_branches
    assert heads(p) == [BASE]
    assert "migrations/versions/" in p.ok("heads").stdout
    assert heads(p, "-c", "pyproject.toml") == [BASE]  # as alembic -c pyproject.toml
    assert heads(p, "-c", "alembic.ini") == [BASE]  # and the pyproject.toml beside it
    assert heads(p, "-c", "alembic.ini", "-c", "pyproject.toml") == [BASE]  # both named
    assert json.loads(p.ok("heads", "--json", "feature1").stdout)["heads"] == [F1]
    plan = json.loads(p.ok("plan", "--json", "feature1", "feature2").stdout)
    assert (plan["common"], plan["downgrade"], plan["upgrade"]) == ([BASE], [F1], [F2])


def test_switch_round_trip_keeps_rows(pyproject_db_at_feature1_with_emails: Project) -> None:
    p = pyproject_db_at_feature1_with_emails
    out = p.ok("switch", "feature2")
    assert "Saved the database as snapshot" in out.stdout
    assert sqlite_version(p.db_path) == {F2}
    assert "posts" in sqlite_tables(p.db_path)
    assert "email" not in sqlite_columns(p.db_path, "users")
    assert F2 in p.current().stdout  # alembic itself agrees

    out = p.ok("switch", "feature1")
    assert "Restored snapshot" in out.stdout
    assert sqlite_version(p.db_path) == {F1}
    assert "posts" not in sqlite_tables(p.db_path)
    with sqlite3.connect(p.db_path) as conn:
        assert emails(conn) == EMAILS
    assert F1 in p.current().stdout


def test_checkouts_through_the_hook(pyproject_db_at_feature1_with_emails: Project) -> None:
    p = pyproject_db_at_feature1_with_emails
    p.ok("install")
    out = p.checkout("feature2")
    assert "Traceback" not in out.stderr
    assert sqlite_version(p.db_path) == {F2}
    assert "posts" in sqlite_tables(p.db_path)

    out = p.checkout("feature1")
    assert "restored the snapshot of 'feature1'" in out.stderr
    assert sqlite_version(p.db_path) == {F1}
    with sqlite3.connect(p.db_path) as conn:
        assert emails(conn) == EMAILS
    assert F1 in p.current().stdout


def test_verify_drift_and_models(pyproject_db_at_feature1_with_emails: Project) -> None:
    """verify runs the template's env.py on a scratch database, ``--drift`` compares the
    live one, ``--models`` says the template's env.py has no target_metadata."""
    p = pyproject_db_at_feature1_with_emails
    before = p.db_path.read_bytes()
    report = json.loads(p.ok("verify", "feature2", "--against", "main", "--json").stdout)
    assert report["ok"] and [r["revision"] for r in report["revisions"]] == [F2]
    assert "no drift" in p.ok("verify", "--drift").stdout
    proc = p.branchmig("verify", "--models")
    assert proc.returncode == 2 and "no target_metadata" in proc.stderr, proc.stderr
    assert p.db_path.read_bytes() == before


@pytest.fixture
def pyproject_branch_with_its_own_version_locations(
    pyproject_repo_with_two_feature_branches: Project,
) -> tuple[Project, str, str]:
    """Branch 'shop' (from feature2) first adds db/shop/SHOP without naming the folder,
    then names it in [tool.alembic] version_locations (only pyproject.toml changes);
    main, whose pyproject.toml names no version_locations, checked out. Returns the
    project and the two commits of 'shop'."""
    p = pyproject_repo_with_two_feature_branches
    p.git("checkout", "-q", "-b", "shop", "feature2")
    (p.root / "db" / "shop").mkdir(parents=True)
    (p.root / "db" / "shop" / f"{SHOP}_shops.py").write_text(SHOP_SCRIPT)
    unnamed = p.commit("shop: a script in a folder not named yet")
    set_tool_alembic(
        p.root, "version_locations", '["%(here)s/migrations/versions", "%(here)s/db/shop"]'
    )
    named = p.commit("shop: name the folder")
    p.git("checkout", "-q", "main")
    return p, unnamed, named


def test_each_ref_is_read_with_its_own_tool_alembic(
    pyproject_branch_with_its_own_version_locations: tuple[Project, str, str],
) -> None:
    p, unnamed, named = pyproject_branch_with_its_own_version_locations
    # Asked in this order, the first answer is cached by the folders' tree ids: a changed
    # [tool.alembic] alone must not reuse it.
    assert heads(p) == [BASE]
    assert json.loads(p.ok("heads", "--json", unnamed).stdout)["heads"] == [F2]
    assert json.loads(p.ok("heads", "--json", named).stdout)["heads"] == [SHOP]
    plan = json.loads(p.ok("plan", "--json", "main", "shop").stdout)
    assert plan["upgrade"] == [F2, SHOP]

    ws = Workspace.open(p.root)
    try:
        assert ws.project.locations().version_locations == ("migrations/versions",)
        assert ws.locations_at(named).version_locations == ("migrations/versions", "db/shop")
        assert ws.locations_at(unnamed).version_locations == ("migrations/versions",)
        assert ws.signature(named) != ws.signature(unnamed)
        assert {r.path for r in ws.scripts_at("shop").revisions} >= {f"db/shop/{SHOP}_shops.py"}
    finally:
        ws.close()

    # And a switch runs it through Alembic reading the checked-out pyproject.toml.
    p.ok("sync")
    p.ok("switch", "shop")
    assert sqlite_version(p.db_path) == {SHOP}
    assert SHOP in p.current().stdout
    p.ok("switch", "main")
    assert sqlite_version(p.db_path) == {BASE}
    assert "shops" not in sqlite_tables(p.db_path)


MARK_HOOK = """\
import sys

with open(sys.argv[1], "a") as f:
    f.write("# written by the post-write hook\\n")
"""


def test_merge_heads_names_its_file_by_the_pyproject_file_template(
    pyproject_repo_with_two_feature_branches: Project,
) -> None:
    p = pyproject_repo_with_two_feature_branches
    set_tool_alembic(p.root, "file_template", '"%%(year)d_%%(rev)s_%%(slug)s"')
    (p.root / "mark.py").write_text(MARK_HOOK)
    with (p.root / "pyproject.toml").open("a") as f:
        f.write(
            '\n[[tool.alembic.post_write_hooks]]\nname = "mark"\ntype = "exec"\n'
            f"executable = {json.dumps(sys.executable)}\n"
            'options = "%(here)s/mark.py REVISION_SCRIPT_FILENAME"\n'
        )
    p.commit("file_template and a post-write hook")
    p.git("merge", "-q", "--no-edit", "feature1")
    p.git("merge", "-q", "--no-edit", "feature2")

    out = p.ok("merge-heads", "--no-upgrade")

    new = sorted(f.name for f in p.versions.glob("*.py"))
    written = [n for n in new if not n.startswith((BASE, F1, F2))]
    assert len(written) == 1, new
    assert re.fullmatch(r"\d{4}_[0-9a-f]{12}_merge_feature1_and_feature2_heads\.py", written[0]), (
        written[0]
    )
    assert f"migrations/versions/{written[0]}" in out.stdout
    text = (p.versions / written[0]).read_text()
    assert text.endswith("# written by the post-write hook\n")
    assert len(heads(p)) == 1


# -- the rules, against Alembic's own Config ------------------------------------------------


@pytest.mark.parametrize(
    ("ini", "toml"),
    [
        ("", 'script_location = "%(here)s/b"\nrecursive_version_locations = true\n'),
        ("script_location = %(here)s/a\n", 'script_location = "%(here)s/b"\n'),
        ("", 'script_location = "%(here)s/b"\nversion_locations = ["%(here)s/x", "%(here)s/y"]\n'),
        (
            "path_separator = os\nversion_locations = %(here)s/x\n",
            'script_location = "%(here)s/b"\nversion_locations = ["%(here)s/y"]\n',
        ),
        (
            "recursive_version_locations = true\n",
            'script_location = "%(here)s/a"\nrecursive_version_locations = false\n',
        ),
    ],
    ids=[
        "toml-only",
        "ini-wins-script",
        "toml-versions",
        "ini-wins-versions",
        "ini-wins-recursive",
    ],
)
def test_each_option_from_the_ini_first_then_tool_alembic(
    tmp_path: Path, ini: str, toml: str
) -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    for folder in ("a", "b", "x", "y"):
        (tmp_path / folder).mkdir()
    ini_text = f"[alembic]\n{ini}"
    toml_text = f"[tool.alembic]\n{toml}"
    (tmp_path / "alembic.ini").write_text(ini_text)
    (tmp_path / "pyproject.toml").write_text(toml_text)
    theirs = ScriptDirectory.from_config(
        Config(str(tmp_path / "alembic.ini"), toml_file=str(tmp_path / "pyproject.toml"))
    )
    ours = parse_locations(
        ini_text,
        config_path=tmp_path / "alembic.ini",
        repo_root=tmp_path,
        toml_text=toml_text,
        toml_path=tmp_path / "pyproject.toml",
    )
    assert ours.script_location == Path(theirs.dir).relative_to(tmp_path).as_posix()
    assert ours.version_locations == tuple(
        v.relative_to(tmp_path).as_posix() for v in theirs._version_locations
    )
    assert ours.recursive == theirs.recursive_version_locations


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('script_location = "pkg:migrations"', "is a package resource"),
        ('script_location = "m"\nversion_locations = "m/versions"', "must be a list of strings"),
        ('script_location = "m"\nrecursive_version_locations = "yes"', "must be true or false"),
        ('script_location = "%(nowhere)s/m"', "bad %-substitution"),
    ],
)
def test_bad_tool_alembic(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_locations(
            None,
            config_path=tmp_path / "alembic.ini",
            repo_root=tmp_path,
            toml_text=f"[tool.alembic]\n{toml}\n",
            toml_path=tmp_path / "pyproject.toml",
        )


def test_pyproject_without_alembic_ini(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "p")
    (root / "migrations" / "versions").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        '[tool.alembic]\nscript_location = "%(here)s/migrations"\n'
    )
    project = find_project(root, repo_root=root)
    assert (project.kind, project.toml_rel) == ("alembic", "pyproject.toml")
    assert not project.config_path.exists()
    assert project.locations().version_locations == ("migrations/versions",)
    assert (
        find_project(root, repo_root=root, config=Path("pyproject.toml")).toml_rel
        == "pyproject.toml"
    )


def test_neither_file_names_script_location(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "p")
    (root / "alembic.ini").write_text("[alembic]\nsqlalchemy.url = sqlite://\n")
    (root / "pyproject.toml").write_text('[tool.alembic]\nfile_template = "%%(rev)s"\n')
    with pytest.raises(
        ConfigError,
        match=r"has no script_location in \[alembic\], nor "
        r"'.*pyproject.toml' in \[tool.alembic\]",
    ):
        find_project(root, repo_root=root)
