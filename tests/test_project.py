"""Finding the project: alembic.ini, Flask-Migrate's migrations/, [tool.branchmig], and
the versions folders of each ref."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from gitutil import Repo, alembic_init, git_env, init_repo, make_alembic_repo, script_text

from branchmig.errors import ConfigError
from branchmig.project import find_project, parse_locations, read_settings
from branchmig.workspace import Workspace


def set_option(ini: Path, name: str, value: str) -> None:
    """Set ``name = value`` in [alembic], replacing a commented or present line."""
    lines = ini.read_text().splitlines()
    lines = [ln for ln in lines if not ln.startswith((f"{name} =", f"{name}="))]
    lines.insert(lines.index("[alembic]") + 1, f"{name} = {value}")
    ini.write_text("\n".join(lines) + "\n")


def test_plain_alembic_ini_at_the_top(empty_alembic_repo: Repo) -> None:
    root = empty_alembic_repo.root
    project = find_project(root / "alembic", repo_root=root)
    assert project.kind == "alembic"
    assert project.config_rel == "alembic.ini"
    locs = project.locations()
    assert (locs.script_location, locs.version_locations, locs.recursive) == (
        "alembic",
        ("alembic/versions",),
        False,
    )
    assert project.watch_paths() == ("alembic", "alembic.ini", "alembic/versions")


def test_flask_migrate_layout_from_flask_db_init(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "flaskapp")
    (root / "app.py").write_text(
        "from flask import Flask\nfrom flask_migrate import Migrate\n"
        "from flask_sqlalchemy import SQLAlchemy\n\n"
        "app = Flask(__name__)\n"
        "app.config['SQLALCHEMY_DATABASE_URI'] = 'sqlite:///app.db'\n"
        "db = SQLAlchemy(app)\nmigrate = Migrate(app, db)\n"
    )
    flask = str(Path(sys.executable).with_name("flask"))
    subprocess.run(
        [flask, "--app", "app", "db", "init"],
        cwd=root,
        env=git_env(),
        check=True,
        capture_output=True,
    )
    assert (root / "migrations" / "alembic.ini").is_file()
    project = find_project(root, repo_root=root)
    assert project.kind == "flask"
    assert project.config_rel == "migrations/alembic.ini"
    locs = project.locations()
    assert (locs.script_location, locs.version_locations) == (
        "migrations",
        ("migrations/versions",),
    )


def test_tool_branchmig_config(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "p")
    (root / "db").mkdir()
    from alembic import command
    from alembic.config import Config

    command.init(Config(str(root / "db" / "alembic.ini")), str(root / "db" / "migrations"))
    (root / "pyproject.toml").write_text(
        '[tool.branchmig]\nconfig = "db/alembic.ini"\nexpected-heads = 2\n'
    )
    project = find_project(root, repo_root=root)
    assert project.config_rel == "db/alembic.ini"
    assert project.settings.expected_heads == 2
    assert project.locations().version_locations == ("db/migrations/versions",)


def test_config_option_is_relative_to_where_the_command_runs(tmp_path: Path) -> None:
    repo = make_alembic_repo(tmp_path / "p")
    (repo.root / "sub").mkdir()
    (repo.root / "sub" / "other.ini").write_text(
        "[alembic]\nscript_location = %(here)s/../alembic\n"
    )
    project = find_project(repo.root / "sub", repo_root=repo.root, config=Path("other.ini"))
    assert project.config_rel == "sub/other.ini"
    assert project.locations().script_location == "alembic"
    with pytest.raises(ConfigError, match=r"^No such config file: '.*nope.ini'$"):
        find_project(repo.root, repo_root=repo.root, config=Path("nope.ini"))


@pytest.mark.parametrize(
    ("separator", "joined"),
    [
        ("os", "%(here)s/a/versions:%(here)s/b/versions"),
        ("space", "%(here)s/a/versions  %(here)s/b/versions"),
        (";", "%(here)s/a/versions;%(here)s/b/versions"),
        (":", "%(here)s/a/versions:%(here)s/b/versions"),
        ("newline", "\n    %(here)s/a/versions\n    %(here)s/b/versions"),
        (None, "%(here)s/a/versions, %(here)s/b/versions"),
    ],
)
def test_version_locations_with_separators(
    tmp_path: Path, separator: str | None, joined: str
) -> None:
    sep = f"path_separator = {separator}\n" if separator else ""
    text = f"[alembic]\nscript_location = a\n{sep}version_locations = {joined}\n"
    locs = parse_locations(text, config_path=tmp_path / "alembic.ini", repo_root=tmp_path)
    assert locs.version_locations == ("a/versions", "b/versions")


def test_legacy_version_path_separator_and_bad_separator(tmp_path: Path) -> None:
    text = "[alembic]\nscript_location = a\nversion_path_separator = ;\nversion_locations = x;y\n"
    locs = parse_locations(text, config_path=tmp_path / "alembic.ini", repo_root=tmp_path)
    assert locs.version_locations == ("x", "y")
    with pytest.raises(ConfigError, match="path_separator 'comma' .* is not valid"):
        parse_locations(
            text.replace("version_path_separator = ;", "path_separator = comma"),
            config_path=tmp_path / "alembic.ini",
            repo_root=tmp_path,
        )


def test_recursive_version_locations(empty_alembic_repo: Repo) -> None:
    repo = empty_alembic_repo
    set_option(repo.root / "alembic.ini", "recursive_version_locations", "true")
    (repo.versions / "2024" / "01").mkdir(parents=True)
    (repo.versions / "2024" / "01" / "deep_step.py").write_text(script_text("deep", "top"))
    repo.write("top", None)
    repo.commit("nested scripts")
    ws = Workspace.open(repo.root)
    try:
        assert ws.project.locations().recursive
        assert {r.id for r in ws.scripts_at().revisions} == {"top", "deep"}
        assert {r.id for r in ws.scripts_at("HEAD").revisions} == {"top", "deep"}
    finally:
        ws.close()


def test_each_ref_is_read_with_its_own_folders(empty_alembic_repo: Repo) -> None:
    repo = empty_alembic_repo
    repo.write("old1", None)
    repo.commit("scripts in alembic/versions")
    # Then the versions move to two folders named with %(here)s and path_separator = os.
    (repo.root / "db" / "core").mkdir(parents=True)
    (repo.root / "db" / "shop").mkdir(parents=True)
    repo.git("mv", "alembic/versions/old1_step.py", "db/core/old1_step.py")
    (repo.root / "db" / "shop" / "s1.py").write_text(script_text("s1", None, labels="shop"))
    set_option(repo.root / "alembic.ini", "version_locations", "%(here)s/db/core:%(here)s/db/shop")
    repo.commit("versions moved")
    repo.git("tag", "moved")
    ws = Workspace.open(repo.root)
    try:
        assert ws.project.locations().version_locations == ("db/core", "db/shop")
        assert {r.path for r in ws.scripts_at("HEAD~1").revisions} == {
            "alembic/versions/old1_step.py"
        }
        assert {r.path for r in ws.scripts_at("moved").revisions} == {
            "db/core/old1_step.py",
            "db/shop/s1.py",
        }
        assert {r.id for r in ws.scripts_at().revisions} == {"old1", "s1"}
    finally:
        ws.close()


def test_no_project(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "empty")
    with pytest.raises(ConfigError) as err:
        find_project(root, repo_root=root)
    assert str(err.value) == (
        f"No Alembic project in '{root}': no alembic.ini and no migrations/alembic.ini. "
        "Run 'alembic init alembic' or 'flask db init', or name the config with -c PATH"
    )


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[tool.branchmig]\nsnapshot = "auto"\n',
            r"Unknown key 'snapshot' in \[tool.branchmig\]",
        ),
        (
            '[tool.branchmig]\nsnapshots = "sometimes"\n',
            r"snapshots = 'sometimes'; expected one of",
        ),
        ("[tool.branchmig]\nexpected_heads = 0\n", "expected_heads must be a whole number"),
        ("[tool.branchmig]\nconfig = 3\n", "config must be a string"),
        ("[tool.branchmig\n", "Cannot read"),
        ('[tool]\nbranchmig = "x"\n', "must be a table"),
    ],
)
def test_bad_tool_branchmig(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "pyproject.toml").write_text(toml)
    with pytest.raises(ConfigError, match=message):
        read_settings(tmp_path / "pyproject.toml")


def test_config_named_by_tool_branchmig_must_exist(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "p")
    (root / "pyproject.toml").write_text('[tool.branchmig]\nconfig = "db/alembic.ini"\n')
    with pytest.raises(ConfigError, match=r"config names 'db/alembic.ini', which does not"):
        find_project(root, repo_root=root)


def test_ini_without_script_location_or_env(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "p")
    (root / "alembic.ini").write_text("[alembic]\nsqlalchemy.url = sqlite://\n")
    with pytest.raises(ConfigError, match="has no script_location in \\[alembic\\]"):
        find_project(root, repo_root=root)


def test_versions_outside_the_repository(tmp_path: Path) -> None:
    text = "[alembic]\nscript_location = a\nversion_locations = /elsewhere/versions\n"
    with pytest.raises(ConfigError, match="is outside the git repository"):
        parse_locations(text, config_path=tmp_path / "alembic.ini", repo_root=tmp_path)


def test_project_found_from_a_subfolder_up_to_the_top(tmp_path: Path) -> None:
    """As ``alembic`` finds alembic.ini in the folder it runs in: ``backend/alembic.ini``
    from ``backend/`` or below; env.py runs in ``backend/``; the pyproject.toml read with
    it is the one beside it, by discovery and by -c alike."""
    root = init_repo(tmp_path / "p")
    alembic_init(root / "backend", "app/alembic")
    set_option(root / "backend" / "alembic.ini", "script_location", "app/alembic")
    (root / "backend" / "pyproject.toml").write_text("[project]\nname = 'backend'\n")
    deep = root / "backend" / "app" / "alembic" / "versions"
    for start, config in (
        (root / "backend", None),
        (deep, None),
        (root, Path("backend/alembic.ini")),
    ):
        project = find_project(start, repo_root=root, config=config)
        assert project.config_rel == "backend/alembic.ini"
        assert project.toml_rel == "backend/pyproject.toml"
        assert project.run_dir == root / "backend"
        assert project.locations().script_location == "backend/app/alembic"
        assert project.env_py == root / "backend" / "app" / "alembic" / "env.py"
        assert project.config_files() == (
            "backend/alembic.ini",
            "backend/pyproject.toml",
            "pyproject.toml",
        )
        assert project.pinned_config() == ("backend/alembic.ini", "backend/pyproject.toml")
    with pytest.raises(ConfigError, match="but there is backend/alembic.ini; run branchmig"):
        find_project(root, repo_root=root)


def test_flask_migrate_known_by_its_env_py(tmp_path: Path) -> None:
    """``script_location = .`` in migrations/alembic.ini: Flask-Migrate all the same,
    because its env.py takes the engine from the app's ``migrate`` extension; the app's
    folder is where it runs, in a subfolder too."""
    root = init_repo(tmp_path / "p")
    for folder in (root / "migrations", root / "backend" / "migrations"):
        folder.mkdir(parents=True)
        (folder / "alembic.ini").write_text("[alembic]\nscript_location = .\n")
        (folder / "env.py").write_text(
            "from flask import current_app\ntarget_db = current_app.extensions['migrate'].db\n"
        )
    top = find_project(root, repo_root=root)
    assert (top.kind, top.config_rel, top.run_dir) == ("flask", "migrations/alembic.ini", root)
    assert top.locations().script_location == "migrations"
    assert top.pinned_config() == ()
    sub = find_project(root / "backend", repo_root=root)
    assert (sub.kind, sub.run_dir) == ("flask", root / "backend")
    assert sub.pinned_config() == ("backend/migrations/alembic.ini",)
    # The same ini beside a plain env.py is plain Alembic, run from its own folder.
    (root / "migrations" / "env.py").write_text("from alembic import context\n")
    plain = find_project(root, repo_root=root)
    assert (plain.kind, plain.run_dir) == ("alembic", root / "migrations")
    (root / "migrations" / "alembic.ini").write_text("[alembic]\n")
    (root / "migrations" / "env.py").unlink()
    with pytest.raises(ConfigError) as err:
        find_project(root, repo_root=root)
    assert str(err.value) == (
        f"'{root / 'migrations' / 'alembic.ini'}' has no script_location in [alembic] and no "
        "env.py beside it taking its engine from Flask-Migrate "
        "(current_app.extensions['migrate']); set script_location (alembic init writes it), "
        "or name the config with -c PATH"
    )


def test_subfolder_project_reads_tool_branchmig_beside_it(tmp_path: Path) -> None:
    """backend/pyproject.toml's [tool.branchmig] (the FastAPI template keeps its
    pyproject.toml there) counts when the top level's pyproject.toml has none."""
    root = init_repo(tmp_path / "p")
    alembic_init(root / "backend", "app/alembic")
    (root / "backend" / "pyproject.toml").write_text('[tool.branchmig]\nsnapshots = "always"\n')
    project = find_project(root / "backend", repo_root=root)
    assert project.settings.snapshots == "always"
    assert "backend/pyproject.toml" in project.config_files()
    assert find_project(root, repo_root=root, config=Path("backend/alembic.ini")).settings == (
        project.settings
    )
    (root / "pyproject.toml").write_text("[tool.branchmig]\nexpected_heads = 2\n")
    top = find_project(root / "backend", repo_root=root).settings
    assert (top.snapshots, top.expected_heads) == ("auto", 2)
