"""Install and uninstall branchmig's git hooks, and report which are in place.

The hooks are POSIX sh scripts, all written from one template (``hook-tmpl`` in the
top-level ``hooks/`` folder, shipped as the package data ``branchmig.hook_scripts``) with
the hook's name between its ``# start templated`` and ``# end templated`` lines. They
decide with git plumbing alone whether a checkout, merge or rebase changed a watched path,
and only then start Python; what they need to know per repository is in
``<git common dir>/branchmig/hook.conf``.

Someone else's hook is never overwritten: it is renamed ``<hook>.branchmig-chained``, our
script runs it first with the same arguments and standard input, and its exit status stays
the hook's. ``uninstall`` removes only our scripts (they carry ``MARKER``) and puts the
chained ones back.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from branchmig.errors import BranchmigError, ConfigError, GitError
from branchmig.gitrepo import GitRepo
from branchmig.layout import hook_conf_path, write_private

HOOK_NAMES: tuple[str, ...] = ("post-checkout", "post-merge", "post-rewrite", "post-commit")
MARKER = "# branchmig-hook:"
"""The line that marks our scripts, those of every branchmig version (before the template,
each hook had a file of its own, marked the same)."""
CHAINED_SUFFIX = ".branchmig-chained"
TEMPLATE_NAME = "hook-tmpl"
TEMPLATE_START = b"# start templated\n"
TEMPLATE_END = b"# end templated\n"


@dataclass(frozen=True)
class InstallResult:
    hooks_dir: Path
    installed: tuple[Path, ...]
    """Our scripts, written or refreshed."""
    chained: tuple[Path, ...]
    """Hooks that were there before, moved aside by this install and now run by ours."""
    config: Path
    python: str
    watch: tuple[str, ...]


@dataclass(frozen=True)
class UninstallResult:
    hooks_dir: Path
    removed: tuple[Path, ...]
    """Our scripts, deleted."""
    restored: tuple[Path, ...]
    """Chained hooks put back under their own name."""
    config_removed: bool


@dataclass(frozen=True)
class HookState:
    name: str
    path: Path
    ours: bool
    """Our script is at ``path``."""
    foreign: bool
    """Someone else's hook is at ``path`` (then ours is not installed)."""
    chained: Path | None
    """The hook ours runs first, when there is one."""


@dataclass(frozen=True)
class HookStatus:
    hooks_dir: Path
    hooks: tuple[HookState, ...]
    config: Path | None
    """``hook.conf``, when it exists."""
    python: str | None
    watch: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """All our hooks and their configuration are in place."""
        return self.config is not None and all(hook.ours for hook in self.hooks)


@dataclass(frozen=True)
class _Repo:
    toplevel: Path
    common_dir: Path
    hooks_dir: Path

    @property
    def config(self) -> Path:
        return hook_conf_path(self.common_dir)


def install(
    *,
    repo_root: Path,
    python: str = sys.executable,
    watch: Sequence[str],
    config: Sequence[str] = (),
) -> InstallResult:
    """Install the post-checkout, post-merge, post-rewrite and post-commit hooks for
    ``repo_root``.

    They go where git looks for hooks: ``core.hooksPath`` when set, else the hooks folder of
    the common git dir, which linked worktrees share. ``python`` is the interpreter the
    hooks run branchmig with (so they work without the virtualenv activated); ``watch``
    names the files and folders, relative to the top level, whose content decides whether
    the migrations changed; ``config`` the project's config files (relative to the top)
    when the hooks, run from the top, must name them as ``-c`` does. Installing again
    refreshes our scripts and the configuration.
    """
    repo = _find_repo(repo_root)
    watch_paths = _normalise_watch(watch, repo.toplevel)
    interpreter = _resolve_python(python)
    template = _template()
    scripts = {name: _render(template, name) for name in HOOK_NAMES}

    # Check every hook before touching any, so a conflict leaves the folder as it was.
    for name in HOOK_NAMES:
        path = repo.hooks_dir / name
        aside = _chained_path(path)
        if _exists(path) and not _is_ours(path) and _exists(aside):
            raise BranchmigError(
                f"'{path}' is not branchmig's hook and '{aside}' already holds the hook that "
                f"branchmig's runs first; merge the two by hand, then run: branchmig install"
            )

    repo.hooks_dir.mkdir(parents=True, exist_ok=True)
    installed: list[Path] = []
    chained: list[Path] = []
    for name in HOOK_NAMES:
        path = repo.hooks_dir / name
        if _exists(path) and not _is_ours(path):
            aside = _chained_path(path)
            os.rename(path, aside)
            chained.append(aside)
        _write_executable(path, scripts[name])
        installed.append(path)

    named = _normalise_watch(config, repo.toplevel) if config else ()
    _write_config(repo.config, python=interpreter, watch=watch_paths, config=named)
    return InstallResult(
        hooks_dir=repo.hooks_dir,
        installed=tuple(installed),
        chained=tuple(chained),
        config=repo.config,
        python=interpreter,
        watch=watch_paths,
    )


def uninstall(*, repo_root: Path) -> UninstallResult:
    """Remove branchmig's hooks and their configuration; put the chained hooks back.

    Hooks that are not ours are left alone, and so is a chained hook whose name someone
    else's hook has taken since.
    """
    repo = _find_repo(repo_root)
    removed: list[Path] = []
    restored: list[Path] = []
    for name in HOOK_NAMES:
        path = repo.hooks_dir / name
        if _is_ours(path):
            path.unlink()
            removed.append(path)
        aside = _chained_path(path)
        if _exists(aside) and not _exists(path):
            os.rename(aside, path)
            restored.append(path)

    config_removed = repo.config.is_file()
    if config_removed:
        repo.config.unlink()
    return UninstallResult(
        hooks_dir=repo.hooks_dir,
        removed=tuple(removed),
        restored=tuple(restored),
        config_removed=config_removed,
    )


def installed(*, repo_root: Path) -> HookStatus:
    """Which of branchmig's hooks are in place for ``repo_root``, where, and what they chain."""
    repo = _find_repo(repo_root)
    hooks = []
    for name in HOOK_NAMES:
        path = repo.hooks_dir / name
        ours = _is_ours(path)
        aside = _chained_path(path)
        hooks.append(
            HookState(
                name=name,
                path=path,
                ours=ours,
                foreign=_exists(path) and not ours,
                chained=aside if ours and _exists(aside) else None,
            )
        )
    python, watch = _read_config(repo.config)
    return HookStatus(
        hooks_dir=repo.hooks_dir,
        hooks=tuple(hooks),
        config=repo.config if repo.config.is_file() else None,
        python=python,
        watch=watch,
    )


def _find_repo(repo_root: Path) -> _Repo:
    if not repo_root.is_dir():
        raise GitError(f"'{repo_root}' is not a directory")
    repo = GitRepo.discover(repo_root)
    return _Repo(toplevel=repo.top, common_dir=repo.common_dir, hooks_dir=repo.hooks_dir())


def _normalise_watch(watch: Sequence[str], toplevel: Path) -> tuple[str, ...]:
    if isinstance(watch, str):
        watch = [watch]
    paths: list[str] = []
    for given in watch:
        if "\n" in given or "\r" in given:
            raise ConfigError(f"Watched path {given!r} holds a line break; rename it")
        path = Path(given)
        if path.is_absolute():
            try:
                path = path.relative_to(toplevel)
            except ValueError:
                raise ConfigError(
                    f"Watched path '{given}' is outside the repository '{toplevel}'"
                ) from None
        parts = [part for part in PurePosixPath(path.as_posix()).parts if part != "."]
        if ".." in parts:
            raise ConfigError(f"Watched path '{given}' must be inside the repository, without '..'")
        normalised = "/".join(parts)
        if normalised not in paths:
            paths.append(normalised)
    if not paths:
        raise ConfigError(
            "No watched paths: name the migrations folder (and alembic.ini) for the hooks "
            "to compare"
        )
    return tuple(paths)


def _resolve_python(python: str) -> str:
    # shutil and importlib.resources (~5 ms) load for install only, not for the hook.
    import shutil

    found = shutil.which(python) if os.sep not in python else python
    if found is None or not os.access(found, os.X_OK) or os.path.isdir(found):
        raise ConfigError(f"Python interpreter '{python}' not found or not executable")
    if "\n" in found or "\r" in found:
        raise ConfigError(f"Python interpreter path {found!r} holds a line break")
    return os.path.abspath(found)


def _template() -> bytes:
    from importlib import resources

    try:
        return resources.files("branchmig.hook_scripts").joinpath(TEMPLATE_NAME).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        pass
    # Running from a source checkout that is not installed: the template's own folder.
    source = Path(__file__).resolve().parent.parent / "hooks" / TEMPLATE_NAME
    try:
        return source.read_bytes()
    except FileNotFoundError:
        raise BranchmigError(
            f"The hook template '{TEMPLATE_NAME}' is missing from this branchmig installation; "
            f"reinstall it: pip install --force-reinstall branchmig"
        ) from None


def _render(template: bytes, name: str) -> bytes:
    """The script of hook ``name``: the template, its name written between the markers."""
    before, start, rest = template.partition(TEMPLATE_START)
    _, end, after = rest.partition(TEMPLATE_END)
    if not start or not end:
        raise BranchmigError(
            f"The hook template '{TEMPLATE_NAME}' of this branchmig installation has no "
            f"templated block; reinstall it: pip install --force-reinstall branchmig"
        )
    return before + TEMPLATE_START + f"hook={name}\n".encode() + TEMPLATE_END + after


def _chained_path(hook: Path) -> Path:
    return hook.with_name(hook.name + CHAINED_SUFFIX)


def _exists(path: Path) -> bool:
    # A dangling symlink is still someone's hook.
    return path.is_symlink() or path.exists()


def _is_ours(path: Path) -> bool:
    try:
        with path.open("rb") as script:
            head = script.read(4096)
    except OSError:
        return False
    return any(line.startswith(MARKER.encode()) for line in head.splitlines()[:5])


def _write_executable(path: Path, content: bytes) -> None:
    temporary = path.with_name(f".{path.name}.branchmig-tmp")
    temporary.write_bytes(content)
    temporary.chmod(0o755)
    os.replace(temporary, path)


def _write_config(
    path: Path, *, python: str, watch: Sequence[str], config: Sequence[str] = ()
) -> None:
    lines = [
        "# Written by `branchmig install`, read by its git hooks. One key=value a line;",
        "# watch: paths relative to the top level whose content decides whether the",
        "# migrations changed; config: the project's config files, named as -c names them.",
        f"python={python}",
        *(f"watch={item}" for item in watch),
        *(f"config={item}" for item in config),
    ]

    write_private(path, ("\n".join(lines) + "\n").encode("utf-8"))


def _read_config(path: Path) -> tuple[str | None, tuple[str, ...]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, ()
    python: str | None = None
    watch: list[str] = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or line.startswith("#"):
            continue
        if key == "python":
            python = value
        elif key == "watch":
            watch.append(value)
    return python, tuple(watch)
