"""Find the project: its alembic.ini (plain Alembic or Flask-Migrate layout), the
``[tool.branchmig]`` settings, the git repository, and where the versions folders are."""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from branchmig.errors import ConfigError, NoProjectError

SnapshotMode = Literal["auto", "always", "never"]
MergeMode = Literal["warn", "merge", "rebase"]

_SEPARATORS = {"space": " ", "newline": "\n", "os": os.pathsep, ":": ":", ";": ";"}


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


@dataclass(frozen=True)
class Locations:
    """Where the scripts are, as paths relative to the repository's top level."""

    script_location: str
    version_locations: tuple[str, ...]
    recursive: bool = False


@dataclass(frozen=True)
class Project:
    repo_root: Path
    config_path: Path
    kind: Literal["alembic", "flask"]
    settings: Settings = field(default_factory=Settings)

    @property
    def config_rel(self) -> str:
        return self.config_path.relative_to(self.repo_root).as_posix()

    def locations(self, config_text: str | None = None) -> Locations:
        """The folders of this project, read from ``config_text`` (the alembic.ini as it
        is at some ref) or from the working tree's alembic.ini."""
        if config_text is None:
            try:
                config_text = self.config_path.read_text(encoding="utf-8")
            except OSError as err:
                raise ConfigError(f"Cannot read '{self.config_path}': {err.strerror}") from err
        return parse_locations(
            config_text,
            config_path=self.config_path,
            repo_root=self.repo_root,
            section=self.settings.ini_section,
            flask_directory=self.flask_directory if self.kind == "flask" else None,
        )

    @property
    def flask_directory(self) -> Path:
        return self.config_path.parent

    def watch_paths(self) -> tuple[str, ...]:
        """The paths whose content decides whether a checkout touches migrations."""
        locs = self.locations()
        paths = {locs.script_location, *locs.version_locations, self.config_rel}
        return tuple(sorted(p for p in paths if p))


def find_project(start: Path, *, repo_root: Path, config: Path | None = None) -> Project:
    """The project of the repository at ``repo_root``, seen from ``start``.

    Order: ``-c PATH``; ``[tool.branchmig] config`` in pyproject.toml; ``alembic.ini`` at
    the top level; a Flask-Migrate ``migrations/alembic.ini``.
    """
    settings = read_settings(repo_root / "pyproject.toml")
    if config is not None:
        path = config if config.is_absolute() else (start / config)
        if not path.is_file():
            raise ConfigError(f"No such config file: '{path}'")
        return _project_from_ini(path.resolve(), repo_root, settings)
    if settings.config:
        path = repo_root / settings.config
        if not path.is_file():
            raise ConfigError(
                f"[tool.branchmig] config names '{settings.config}', which does not exist"
            )
        return _project_from_ini(path.resolve(), repo_root, settings)
    for candidate in (repo_root / "alembic.ini", repo_root / settings.directory / "alembic.ini"):
        if candidate.is_file():
            return _project_from_ini(candidate.resolve(), repo_root, settings)
    raise NoProjectError(
        f"No Alembic project in '{repo_root}': no alembic.ini and no "
        f"{settings.directory}/alembic.ini. Run 'alembic init alembic' or 'flask db init', "
        "or name the config with -c PATH"
    )


def _project_from_ini(path: Path, repo_root: Path, settings: Settings) -> Project:
    try:
        path.relative_to(repo_root)
    except ValueError:
        raise ConfigError(f"'{path}' is outside the git repository '{repo_root}'") from None
    parser = _read_ini(path.read_text(encoding="utf-8"), path)
    has_location = parser.has_option(settings.ini_section, "script_location")
    # Flask-Migrate's alembic.ini has no script_location: Migrate(directory=...) sets it.
    kind: Literal["alembic", "flask"] = (
        "alembic" if has_location else "flask" if (path.parent / "env.py").is_file() else "alembic"
    )
    if kind == "alembic" and not has_location:
        raise ConfigError(
            f"'{path}' has no script_location in [{settings.ini_section}] "
            "and no env.py beside it"
        )
    return Project(repo_root=repo_root, config_path=path, kind=kind, settings=settings)


def _read_ini(text: str, path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(defaults={"here": str(path.parent)})
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as err:
        raise ConfigError(f"Cannot parse '{path}': {str(err).splitlines()[0]}") from err
    return parser


def parse_locations(
    text: str,
    *,
    config_path: Path,
    repo_root: Path,
    section: str = "alembic",
    flask_directory: Path | None = None,
) -> Locations:
    """Read ``script_location``, ``version_locations`` (split as Alembic splits them) and
    ``recursive_version_locations`` from an alembic.ini's text."""
    parser = _read_ini(text, config_path)

    def option(name: str) -> str | None:
        try:
            return parser.get(section, name, fallback=None)
        except configparser.Error as err:
            raise ConfigError(f"Cannot read {name} in '{config_path}': {err}") from err

    base = config_path.parent
    if flask_directory is not None:
        script_location = flask_directory
    else:
        raw = option("script_location")
        if not raw:
            raise ConfigError(f"'{config_path}' has no script_location in [{section}]")
        if ":" in raw and not os.path.isabs(raw) and not raw[1:3] == ":\\":
            raise ConfigError(
                f"script_location '{raw}' in '{config_path}' is a package resource; "
                "branchmig needs a folder in the repository"
            )
        script_location = _resolve(raw, base)
    raw_versions = option("version_locations")
    if raw_versions:
        sep_name = option("path_separator") or option("version_path_separator")
        if sep_name is None:
            parts = [p for p in _legacy_split(raw_versions) if p]
        elif sep_name in _SEPARATORS:
            parts = [p.strip() for p in raw_versions.split(_SEPARATORS[sep_name]) if p.strip()]
        else:
            raise ConfigError(f"path_separator '{sep_name}' in '{config_path}' is not valid")
        versions = [_resolve(p, base) for p in parts]
    else:
        versions = [script_location / "versions"]
    recursive = (option("recursive_version_locations") or "false").lower() in ("true", "1", "yes")
    return Locations(
        script_location=_rel(script_location, repo_root, config_path),
        version_locations=tuple(_rel(v, repo_root, config_path) for v in versions),
        recursive=recursive,
    )


def _legacy_split(value: str) -> list[str]:
    import re

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
    if not pyproject.is_file():
        return Settings()
    import tomllib  # only when there is a pyproject.toml to read

    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"Cannot read '{pyproject}': {err}") from err
    table = data.get("tool", {}).get("branchmig", {})
    if not isinstance(table, dict):
        raise ConfigError(f"[tool.branchmig] in '{pyproject}' must be a table")
    known = {f for f in Settings.__dataclass_fields__}
    unknown = sorted(k.replace("-", "_") for k in table if k.replace("-", "_") not in known)
    if unknown:
        raise ConfigError(
            f"Unknown key(s) {', '.join(repr(u) for u in unknown)} in [tool.branchmig] "
            f"of '{pyproject}'; known: {', '.join(sorted(known))}"
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
    if "alembic_log" in values and not isinstance(values["alembic_log"], bool):
        raise ConfigError("[tool.branchmig] alembic_log must be true or false")
    for key in ("config", "flask_app", "directory", "ini_section"):
        if key in values and not isinstance(values[key], str):
            raise ConfigError(f"[tool.branchmig] {key} must be a string")
    return Settings(**values)
