"""Where branchmig keeps its state: every path under ``.git/branchmig`` that more than one
module needs is named here (``state.py`` names the rest, and writes all of them). Kept
apart from ``state.py`` so that the fast paths (``heads``, the hook's no-op) import no
more than these few lines."""

from __future__ import annotations

from pathlib import Path


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
