"""Where branchmig keeps its state: every path under ``.git/branchmig`` that more than one
module needs is named here (``state.py`` names the rest), and how a file there is
written (``write_private``). Kept apart from ``state.py`` so that the fast paths
(``heads``, the hook's no-op) import no more than these few lines."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from branchmig.errors import StateError


def state_root(common_dir: Path) -> Path:
    """``.git/branchmig`` of the repository whose git common dir is ``common_dir``
    (shared by its linked worktrees)."""
    return common_dir / "branchmig"


def header_cache_path(common_dir: Path) -> Path:
    return state_root(common_dir) / "cache" / "headers.json"


def script_sets_path(common_dir: Path) -> Path:
    return state_root(common_dir) / "cache" / "script-sets"


def heads_memo_path(common_dir: Path) -> Path:
    return state_root(common_dir) / "cache" / "heads.json"


def hook_conf_path(common_dir: Path) -> Path:
    """What the hooks read (``python=``, ``watch=``); the hook template names it too."""
    return state_root(common_dir) / "hook.conf"


def recorded_config(common_dir: Path) -> tuple[str, ...]:
    """The config files ``branchmig install`` recorded for the hooks (``config=`` lines of
    hook.conf), relative to the top level; () when the project is found from the top."""
    try:
        text = hook_conf_path(common_dir).read_text(encoding="utf-8")
    except OSError:
        return ()
    return tuple(line[len("config=") :] for line in text.splitlines() if line.startswith("config="))


def private_folder(path: Path) -> Path:
    """``path`` and its parents up to the git dir, made if needed, readable by the owner
    only (what is kept there holds database names, schemas and data)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    for folder in (path, *path.parents):
        if folder.name == "branchmig" or folder == path:
            with contextlib.suppress(OSError):
                if folder.stat().st_mode & 0o077:
                    folder.chmod(0o700)
        if folder.name == "branchmig":
            break
    return path


def write_private(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Replace ``path`` atomically with ``data``, readable by the owner only; with
    ``durable``, wait for the disk (the journal and the snapshot index must tell the truth
    after a crash). The one way files under ``.git/branchmig`` are written. A failed write
    (a full disk) leaves the old file as it was and raises ``StateError``."""
    private_folder(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        if durable:
            fsync_folder(path.parent)  # the rename itself
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StateError(
            f"Cannot write '{path}': {err.strerror or err}; free some space (or fix the "
            "folder's permissions), then run the command again"
        ) from err


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(path: Path) -> None:
    """Wait for the disk to hold the folder's entries (a rename into it); a platform
    whose folders cannot be opened for that (Windows) does without."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
