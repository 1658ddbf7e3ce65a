"""Find the project: its alembic.ini and ``[tool.alembic]`` in pyproject.toml (plain
Alembic) or its Flask-Migrate folder, the ``[tool.branchmig]`` settings, and where the
versions folders are.

Alembic (1.16+) reads both files and, option by option, prefers the ini's ``[alembic]``
to pyproject.toml's ``[tool.alembic]``; ``parse_locations`` does the same from the texts
of any ref, so each ref is read with its own configuration."""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from branchmig.errors import ConfigError, NoProjectError

SnapshotMode = Literal["auto", "always", "never"]
MergeMode = Literal["warn", "merge", "rebase"]

_SEPARATORS = {"space": " ", "newline": "\n", "os": os.pathsep, ":": ":", ";": ";"}
PYPROJECT = "pyproject.toml"


@dataclass(frozen=True)
class Settings:
    """The ``[tool.branchmig]`` table of pyproject.toml."""

    config: str | None = None
    flask_app: str | None = None
    directory: str = "migrations"
    snapshots: SnapshotMode = "auto"
    on_merge: MergeMode = "warn"
    expected_heads: int = 1
    ini_section: str = "alembic"
    alembic_log: bool = False  # Alembic's own INFO lines ("Running upgrade ...") on stderr
    rehearse: bool = False  # run a move's plan on a copy of the database first


@dataclass(frozen=True)
class Locations:
    """Where the scripts are, as paths relative to the repository's top level."""

    script_location: str
    version_locations: tuple[str, ...]
    recursive: bool = False


@dataclass(frozen=True)
class Project:
    """``config_path`` is the alembic.ini Alembic opens (it may not exist when
    ``[tool.alembic]`` holds everything); ``toml_path`` the pyproject.toml whose
    ``[tool.alembic]`` it reads too (plain Alembic only: Flask-Migrate reads no pyproject)."""

    repo_root: Path
    config_path: Path
    kind: Literal["alembic", "flask"]
    settings: Settings = field(default_factory=Settings)
    toml_path: Path | None = None

    @property
    def config_rel(self) -> str:
        return self.config_path.relative_to(self.repo_root).as_posix()

    @property
    def toml_rel(self) -> str | None:
        if self.toml_path is None:
            return None
        return self.toml_path.relative_to(self.repo_root).as_posix()

    def locations(self) -> Locations:
        """The folders of this project, as the working tree's files name them."""
        toml_text = None if self.toml_path is None else _read_text(self.toml_path)
        return self.locations_from(_read_text(self.config_path), toml_text)

    def locations_from(self, config_text: str | None, toml_text: str | None) -> Locations:
        """The folders as ``config_text`` (the alembic.ini at some ref) and ``toml_text``
        (the pyproject.toml at the same ref) name them; ``None`` for a file the ref lacks."""
        return parse_locations(
            config_text,
            config_path=self.config_path,
            repo_root=self.repo_root,
            section=self.settings.ini_section,
            flask_directory=self.flask_directory if self.kind == "flask" else None,
            toml_text=toml_text if self.toml_path is not None else None,
            toml_path=self.toml_path,
        )

    @property
    def flask_directory(self) -> Path:
        return self.config_path.parent

    @property
    def run_dir(self) -> Path:
        """The folder ``alembic`` (or ``flask db``) is run from, which env.py runs in:
        the config's folder; for Flask-Migrate, the folder holding its ``directory``."""
        if self.kind != "flask":
            return self.config_path.parent
        parts = PurePosixPath(self.settings.directory).parts
        folder = self.flask_directory
        if parts and folder.parts[-len(parts) :] == parts:
            return folder.parents[len(parts) - 1]
        return folder.parent

    @property
    def env_py(self) -> Path:
        """The env.py Alembic runs for this project (as the working tree names it)."""
        if self.kind == "flask":
            return self.flask_directory / "env.py"
        return self.repo_root / self.locations().script_location / "env.py"

    def config_files(self) -> tuple[str, ...]:
        """branchmig's own configuration, relative to the top: the ini, the pyproject.toml
        read with it, and the top-level pyproject.toml holding ``[tool.branchmig]``."""
        files = {self.config_rel, PYPROJECT}
        if self.toml_rel is not None:
            files.add(self.toml_rel)
        if _inside_quietly(self.run_dir, self.repo_root):  # [tool.branchmig] may be there
            files.add((self.run_dir / PYPROJECT).relative_to(self.repo_root).as_posix())
        return tuple(sorted(files))

    def pinned_config(self) -> tuple[str, ...]:
        """The config files the git hooks must name (as ``-c``), relative to the top: they
        run from the top, where this project may not be found by itself (it was named with
        ``-c``, or found next to the user in a subfolder). () when it is."""
        try:
            found = find_project(self.repo_root, repo_root=self.repo_root)
        except ConfigError:
            found = None
        if found is not None and (found.config_path, found.toml_path) == (
            self.config_path,
            self.toml_path,
        ):
            return ()
        named = [self.config_rel]
        if self.toml_rel is not None and self.toml_path is not None and self.toml_path.is_file():
            named.append(self.toml_rel)
        return tuple(named)

    def has_tool_alembic(self) -> bool:
        """Whether the working tree's pyproject.toml holds a ``[tool.alembic]`` table."""
        return self.toml_path is not None and _holds_tool_alembic(self.toml_path)

    def watch_paths(self) -> tuple[str, ...]:
        """The paths whose content decides whether a checkout touches migrations."""
        locs = self.locations()
        paths = {locs.script_location, *locs.version_locations, self.config_rel}
        if self.toml_rel is not None and self.has_tool_alembic():
            paths.add(self.toml_rel)
        return tuple(sorted(p for p in paths if p))


def find_project(
    start: Path, *, repo_root: Path, config: Path | Sequence[Path] | None = None
) -> Project:
    """The project of the repository at ``repo_root``, seen from ``start``.

    Order: ``-c PATH``; ``[tool.branchmig] config`` in pyproject.toml; then from
    ``start`` up to the top level, the first folder holding an ``alembic.ini`` or a
    pyproject.toml with ``[tool.alembic]`` (as ``alembic`` finds them in the folder it is
    run from), or a Flask-Migrate ``migrations/alembic.ini``. A plain Alembic project reads
    ``[tool.alembic]`` of the pyproject.toml beside its ini, as ``alembic`` run from
    there does. ``config`` names an ini or a file called pyproject.toml (or one of each),
    relative to ``start``, as for ``alembic -c``; the other file is the one of that name
    beside it. ``[tool.branchmig]`` is read from the top-level pyproject.toml, else from
    the one in the folder the project runs in.
    """
    top = _read_settings(repo_root / PYPROJECT)
    project = _find(start, repo_root, config, top or Settings())
    if top is not None or project.run_dir == repo_root:
        return project
    # A project in a subfolder may keep [tool.branchmig] in its own pyproject.toml (the
    # FastAPI template's backend/pyproject.toml) when the top-level one has none.
    own = _read_settings(project.run_dir / PYPROJECT)
    if own is None:
        return project
    return _project(project.config_path, project.toml_path, repo_root, own)


def _find(
    start: Path, repo_root: Path, config: Path | Sequence[Path] | None, settings: Settings
) -> Project:
    if config is not None:
        ini, toml = _named_configs(start, [config] if isinstance(config, Path) else config)
        return _project(ini, toml, repo_root, settings)
    if settings.config:
        path = repo_root / settings.config
        if not path.is_file():
            raise ConfigError(
                f"[tool.branchmig] config names '{settings.config}', which does not exist"
            )
        path = path.resolve()
        return _project(path, path.with_name(PYPROJECT), repo_root, settings)
    for folder in _up_to(start.resolve(), repo_root):
        ini, toml = folder / "alembic.ini", folder / PYPROJECT
        if ini.is_file() or _holds_tool_alembic(toml):
            return _project(ini, toml, repo_root, settings)
        flask = folder / settings.directory / "alembic.ini"
        if flask.is_file():
            return _project(flask.resolve(), None, repo_root, settings)
    raise NoProjectError(_not_found(start, repo_root, settings))


def _up_to(start: Path, repo_root: Path) -> list[Path]:
    """``start`` and its parents up to ``repo_root`` (only ``repo_root`` when ``start``
    is outside it)."""
    if not _inside_quietly(start, repo_root):
        return [repo_root]
    folders = [start]
    while folders[-1] != repo_root and folders[-1].parent != folders[-1]:
        folders.append(folders[-1].parent)
    return folders


def _not_found(start: Path, repo_root: Path, settings: Settings) -> str:
    below = sorted(
        {
            p.relative_to(repo_root).as_posix()
            for pattern in ("*/alembic.ini", "*/*/alembic.ini")
            for p in repo_root.glob(pattern)
            if ".venv" not in p.parts and "node_modules" not in p.parts
        }
    )
    where = "" if start.resolve() == repo_root else f" (looked in '{start}' and up to the top)"
    if below:
        first = below[0]
        return (
            f"No Alembic project in '{repo_root}'{where}: no alembic.ini and no "
            f"{settings.directory}/alembic.ini, but there is {', '.join(below[:3])}; run "
            f"branchmig from '{PurePosixPath(first).parent}', or name it: branchmig -c "
            f'{first} ..., or set config = "{first}" in [tool.branchmig] of pyproject.toml'
        )
    return (
        f"No Alembic project in '{repo_root}'{where}: no alembic.ini and no "
        f"{settings.directory}/alembic.ini. Run 'alembic init alembic' or 'flask db init', "
        "or name the config with -c PATH"
    )


def _named_configs(start: Path, names: Sequence[Path]) -> tuple[Path, Path]:
    """The ini and the pyproject.toml that ``-c`` names, as ``alembic -c`` sorts them: a
    file called pyproject.toml is the toml, any other the ini; the one not named is the
    one beside the other (alembic is run from the config's folder)."""
    ini: Path | None = None
    toml: Path | None = None
    for name in names:
        path = name if name.is_absolute() else (start / name)
        if not path.is_file():
            raise ConfigError(f"No such config file: '{path}'")
        if path.name == PYPROJECT:
            if toml is not None:
                raise ConfigError(f"-c names a {PYPROJECT} twice ('{toml}', '{path}')")
            toml = path.resolve()
        else:
            if ini is not None:
                raise ConfigError(
                    f"-c names two ini files ('{ini}', '{path}'); "
                    "give one, and a pyproject.toml if you use one"
                )
            ini = path.resolve()
    if ini is None:
        assert toml is not None
        return toml.with_name("alembic.ini"), toml
    return ini, toml or ini.with_name(PYPROJECT)


def _project(ini: Path, toml: Path | None, repo_root: Path, settings: Settings) -> Project:
    _inside(ini, repo_root)
    ini_text = _read_text(ini)
    table = None
    toml_text = None if toml is None else _read_text(toml)
    if toml is not None and toml_text is not None:
        _inside(toml, repo_root)
        table = tool_alembic(toml_text, toml)
    elif toml is not None and not _inside_quietly(toml, repo_root):
        toml = None  # none there: nothing to read, now or at any ref
    parser = _read_ini(ini_text or "", ini)
    section = settings.ini_section
    in_toml = table is not None and "script_location" in table
    # Flask-Migrate's env.py takes its engine from the app's extension, and Migrate
    # sets script_location to its own folder whatever the ini says (often ".").
    env_py = ini.parent / "env.py"
    if ini_text is not None and _is_flask_migrate_env(env_py):
        return Project(repo_root=repo_root, config_path=ini, kind="flask", settings=settings)
    if parser.has_option(section, "script_location") or in_toml:
        return Project(
            repo_root=repo_root, config_path=ini, kind="alembic", settings=settings, toml_path=toml
        )
    # An old Flask-Migrate alembic.ini has no script_location: Migrate(directory=...) sets it.
    if ini_text is not None and env_py.is_file():
        return Project(repo_root=repo_root, config_path=ini, kind="flask", settings=settings)
    looked = (
        "no env.py beside it taking its engine from Flask-Migrate "
        "(current_app.extensions['migrate'])"
    )
    if table is None:
        raise ConfigError(
            f"'{ini}' has no script_location in [{section}] and {looked}; set "
            "script_location (alembic init writes it), or name the config with -c PATH"
        )
    raise ConfigError(
        f"'{ini}' has no script_location in [{section}], nor '{toml}' in "
        f"[tool.alembic], and {looked}; set it in one of them (alembic init writes it)"
    )


_FLASK_MIGRATE = re.compile(r"""extensions\s*(?:\[\s*|\.get\(\s*)['"]migrate['"]""")


def _is_flask_migrate_env(env_py: Path) -> bool:
    """Whether env.py takes its engine from Flask-Migrate: ``current_app.extensions
    ['migrate']``, as every template ``flask db init`` wrote since 2013 does."""
    try:
        text = env_py.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return _FLASK_MIGRATE.search(text) is not None


def _inside(path: Path, repo_root: Path) -> None:
    if not _inside_quietly(path, repo_root):
        raise ConfigError(f"'{path}' is outside the git repository '{repo_root}'")


def _inside_quietly(path: Path, repo_root: Path) -> bool:
    try:
        path.relative_to(repo_root)
    except ValueError:
        return False
    return True


def _read_text(path: Path) -> str | None:
    """The file's text; None when it does not exist (Alembic reads it as empty)."""
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        raise ConfigError(f"Cannot read '{path}': {err.strerror}") from err


def _read_ini(text: str, path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(defaults={"here": str(path.parent)})
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as err:
        raise ConfigError(f"Cannot parse '{path}': {str(err).splitlines()[0]}") from err
    return parser


def _load_toml(text: str, path: Path) -> dict[str, Any]:
    import tomllib  # only when there is a pyproject.toml to read

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"Cannot read '{path}': {err}") from err


def tool_alembic(text: str, path: Path) -> dict[str, Any] | None:
    """The ``[tool.alembic]`` table of a pyproject.toml's text; None when it has none."""
    tool = _load_toml(text, path).get("tool", {})
    table = tool.get("alembic") if isinstance(tool, dict) else None
    if table is not None and not isinstance(table, dict):
        raise ConfigError(f"[tool.alembic] in '{path}' must be a table")
    return table


def _holds_tool_alembic(pyproject: Path) -> bool:
    text = _read_text(pyproject)
    return text is not None and tool_alembic(text, pyproject) is not None


class _TomlOptions:
    """``[tool.alembic]`` values as Alembic's ``Config`` reads them: strings with
    ``%(here)s`` (the pyproject.toml's folder) substituted."""

    def __init__(self, table: Mapping[str, Any], path: Path) -> None:
        self.table = table
        self.path = path
        self.args = {"here": path.parent.as_posix()}

    def __contains__(self, name: str) -> bool:
        return name in self.table

    def _sub(self, name: str, value: object) -> str:
        if not isinstance(value, str):
            raise ConfigError(
                f"[tool.alembic] {name} in '{self.path}' must be a string, not {value!r}"
            )
        try:
            return value % self.args
        except (KeyError, ValueError, TypeError) as err:
            raise ConfigError(
                f"Cannot read [tool.alembic] {name} in '{self.path}': "
                f"bad %-substitution in {value!r}"
            ) from err

    def string(self, name: str) -> str | None:
        value = self.table.get(name)
        return None if value is None else self._sub(name, value)

    def strings(self, name: str) -> list[str] | None:
        value = self.table.get(name)
        if value is None:
            return None
        if not isinstance(value, list):
            raise ConfigError(
                f"[tool.alembic] {name} in '{self.path}' must be a list of strings, not {value!r}"
            )
        return [self._sub(name, v) for v in value]

    def boolean(self, name: str) -> bool:
        value = self.table.get(name, False)
        if not isinstance(value, bool):
            raise ConfigError(
                f"[tool.alembic] {name} in '{self.path}' must be true or false, not {value!r}"
            )
        return value


def parse_locations(
    text: str | None,
    *,
    config_path: Path,
    repo_root: Path,
    section: str = "alembic",
    flask_directory: Path | None = None,
    toml_text: str | None = None,
    toml_path: Path | None = None,
) -> Locations:
    """Read ``script_location``, ``version_locations`` (split as Alembic splits them) and
    ``recursive_version_locations`` from an alembic.ini's text and a pyproject.toml's
    ``[tool.alembic]``, each option from the ini when it has it (as Alembic does); ``None``
    for a file that does not exist."""
    parser = _read_ini(text or "", config_path)
    table = None
    if toml_text is not None and toml_path is not None:
        table = tool_alembic(toml_text, toml_path)
    toml = _TomlOptions(table or {}, toml_path or repo_root / PYPROJECT)

    def option(name: str) -> str | None:
        try:
            return parser.get(section, name, fallback=None)
        except configparser.Error as err:
            raise ConfigError(f"Cannot read {name} in '{config_path}': {err}") from err

    base = config_path.parent
    toml_base = toml.path.parent
    if flask_directory is not None:
        script_location = flask_directory
    else:
        raw, where, raw_base = option("script_location"), config_path, base
        if raw is None and "script_location" in toml:
            raw, where, raw_base = toml.string("script_location"), toml.path, toml_base
        if not raw:
            also = f" or [tool.alembic] of '{toml.path}'" if table is not None else ""
            raise ConfigError(f"'{config_path}' has no script_location in [{section}]{also}")
        if ":" in raw and not os.path.isabs(raw) and not raw[1:3] == ":\\":
            raise ConfigError(
                f"script_location '{raw}' in '{where}' is a package resource; "
                "branchmig needs a folder in the repository"
            )
        script_location = _resolve(raw, raw_base)
    raw_versions = option("version_locations")
    listed = None if raw_versions else toml.strings("version_locations")
    if raw_versions:
        # Alembic takes the separator from the ini only, whichever file lists the folders.
        sep_name = option("path_separator") or option("version_path_separator")
        if sep_name is None:
            parts = [p for p in _legacy_split(raw_versions) if p]
        elif sep_name in _SEPARATORS:
            parts = [p.strip() for p in raw_versions.split(_SEPARATORS[sep_name]) if p.strip()]
        else:
            raise ConfigError(f"path_separator '{sep_name}' in '{config_path}' is not valid")
        versions = [_resolve(p, base) for p in parts]
    elif listed:
        versions = [_resolve(p.strip(), toml_base) for p in listed if p.strip()]
    else:
        versions = [script_location / "versions"]
    raw_recursive = option("recursive_version_locations")
    if raw_recursive is not None:
        recursive = raw_recursive.lower() in ("true", "1", "yes")
    else:
        recursive = toml.boolean("recursive_version_locations")
    origin = config_path if table is None else toml.path
    return Locations(
        script_location=_rel(script_location, repo_root, config_path),
        version_locations=tuple(_rel(v, repo_root, origin) for v in versions),
        recursive=recursive,
    )


def _legacy_split(value: str) -> list[str]:
    return re.split(r", *| +", value.strip())


def _resolve(raw: str, base: Path) -> Path:
    path = Path(raw)
    return Path(os.path.normpath(path if path.is_absolute() else base / path))


def _rel(path: Path, repo_root: Path, config_path: Path) -> str:
    try:
        rel = PurePosixPath(path.relative_to(repo_root).as_posix())
    except ValueError:
        raise ConfigError(
            f"'{path}' (from '{config_path}') is outside the git repository '{repo_root}'"
        ) from None
    return "" if str(rel) == "." else str(rel)


def read_settings(pyproject: Path) -> Settings:
    """``[tool.branchmig]``, with its values checked; defaults when absent."""
    return _read_settings(pyproject) or Settings()


def _read_settings(pyproject: Path) -> Settings | None:
    """``[tool.branchmig]``, with its values checked; None when there is none."""
    if not pyproject.is_file():
        return None
    import tomllib  # only when there is a pyproject.toml to read

    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"Cannot read '{pyproject}': {err}") from err
    if "branchmig" not in data.get("tool", {}):
        return None
    table = data.get("tool", {}).get("branchmig", {})
    if not isinstance(table, dict):
        raise ConfigError(f"[tool.branchmig] in '{pyproject}' must be a table")
    known = {f for f in Settings.__dataclass_fields__}
    unknown = sorted(k.replace("-", "_") for k in table if k.replace("-", "_") not in known)
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(
            f"Unknown key{'s' if len(unknown) != 1 else ''} "
            f"{', '.join(repr(u) for u in unknown)} in [tool.branchmig] "
            f"of '{pyproject}'; {hint}known: {', '.join(sorted(known))}"
        )
    values = {k.replace("-", "_"): v for k, v in table.items()}
    choices = {"snapshots": ("auto", "always", "never"), "on_merge": ("warn", "merge", "rebase")}
    for key, allowed in choices.items():
        if key in values and values[key] not in allowed:
            raise ConfigError(
                f"[tool.branchmig] {key} = {values[key]!r}; expected one of {', '.join(allowed)}"
            )
    if "expected_heads" in values and (
        not isinstance(values["expected_heads"], int) or values["expected_heads"] < 1
    ):
        raise ConfigError("[tool.branchmig] expected_heads must be a whole number ≥ 1")
    for flag in ("alembic_log", "rehearse"):
        if flag in values and not isinstance(values[flag], bool):
            raise ConfigError(f"[tool.branchmig] {flag} must be true or false")
    for key in ("config", "flask_app", "directory", "ini_section"):
        if key in values and not isinstance(values[key], str):
            raise ConfigError(f"[tool.branchmig] {key} must be a string")
    return Settings(**values)
