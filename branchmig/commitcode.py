"""The project's own modules as they were at a commit, importable while migrations run
with that commit's scripts.

Revisions import helpers that came in or changed on their branch: ``from app.migrations
import utils`` beside env.py, ``from app.flagging import drop_flag`` in the app. Reverted
after the checkout that removed or changed them, the old scripts would meet the working
tree's. While a phase runs with the scripts of commit C, ``importable`` puts a finder
first on ``sys.meta_path`` that answers, for each place Python searches inside the
repository (a ``sys.path`` entry, a package's ``__path__``, the folder the old scripts
were written to), from C's tree, read from git's objects: a module the phase imports
comes from C wherever the working tree lacks it there or holds another text.

What was imported before the phase (the app env.py loaded: its models, extensions, the
metadata the database's engine was given) stays the working tree's, one copy of each
module. The exception is the migrations folders (env.py's, the versions folders): their
modules belong to the scripts, so those imported already are set aside while C's run.
A module C holds only as a namespace folder (no ``__init__.py``) is not served. What the
finder loaded leaves ``sys.modules`` when the phase ends, and what it set aside comes
back.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib.machinery import (
    BYTECODE_SUFFIXES,
    EXTENSION_SUFFIXES,
    SOURCE_SUFFIXES,
    ModuleSpec,
)
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, cast

from branchmig.gitrepo import GitRepo

if TYPE_CHECKING:
    from importlib.abc import Loader

    from branchmig.graph import Revision
    from branchmig.workspace import Workspace


@dataclass(frozen=True)
class CodeAt:
    """The project's code at ``commit``. ``own``: the folders (relative to the top) whose
    modules imported already are set aside for the commit's (the migrations folders);
    ``mirrors``: folders laid out as the repository's top (where old scripts were
    written), searched as the repository."""

    repo: GitRepo
    commit: str
    own: tuple[str, ...] = ()
    mirrors: tuple[Path, ...] = ()


def code_at(ws: Workspace, commit: str, *, mirrors: Sequence[Path] = ()) -> CodeAt | None:
    """``commit``'s code, its migrations folders as its own configuration names them
    (and the working tree's); None when it is the commit checked out (``switch`` reverts
    before its checkout): the working tree is that code, with the user's own edits."""
    if commit == ws.repo.head_commit():
        return None
    own: set[str] = set()
    for locs in (ws.locations_at(commit), ws.project.locations()):
        own.update((locs.script_location, *locs.version_locations))
    return CodeAt(ws.repo, commit, tuple(sorted(own)), tuple(mirrors))


def code_for(
    ws: Workspace,
    revisions: Sequence[Revision],
    *,
    first: Iterable[str | None] = (),
    mirror: Path | None = None,
) -> CodeAt | None:
    """The code the scripts of ``revisions`` ran with: that of the commit holding them
    (``commit_holding``); None when none does, or it is the one checked out."""
    commit = commit_holding(ws.repo, revisions, first=first) if revisions else None
    if commit is None:
        return None
    return code_at(ws, commit, mirrors=() if mirror is None else (mirror,))


def commit_holding(
    repo: GitRepo, revisions: Iterable[Revision], *, first: Iterable[str | None] = ()
) -> str | None:
    """The commit whose tree holds each of ``revisions``' scripts at its path with its
    text: the first of ``first`` that does, else the first among every branch, tag and
    HEAD reflog entry (newest first; the reflog still holds a deleted branch's commits);
    else the one holding most of them; None when no commit holds any (the scripts came
    from branchmig's copies of commits git no longer has)."""
    wanted = [(rev.path, rev.blob) for rev in revisions if rev.path and rev.blob]
    if not wanted:
        return None
    best: tuple[int, str | None] = (0, None)
    tried: set[str] = set()
    preferred = [c for c in dict.fromkeys(first) if c]
    for candidates in (preferred, None):
        if candidates is None:
            candidates = [c for _, c in repo.all_ref_commits() if c not in tried]
        tried.update(candidates)
        specs = [f"{c}:{path}" for c in candidates for path, _ in wanted]
        found = iter(repo.object_ids(specs))
        for commit in candidates:
            held = sum(next(found) == blob for _, blob in wanted)
            if held == len(wanted):
                return commit
            if held > best[0]:
                best = (held, commit)
    return best[1]


@contextlib.contextmanager
def importable(code: CodeAt | None) -> Iterator[None]:
    """While the block runs, the modules of ``code`` are importable as described above
    (nothing changes for None)."""
    if code is None:
        yield
        return
    finder = _Finder(code)
    finder.displace()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)
        finder.put_back()


_MODULE_SUFFIXES = (*SOURCE_SUFFIXES, *EXTENSION_SUFFIXES, *BYTECODE_SUFFIXES)


@dataclass(frozen=True)
class _Found:
    path: str  # relative to the top: app/migrations/utils.py, app/flagging/__init__.py
    blob: str
    package: bool


class _Loader:
    """Runs a module's source as read from git: ``C:path`` names it in tracebacks. (A
    loader by its methods: ``importlib.abc`` is not imported for it on the hook's path.)"""

    def __init__(self, source: bytes, origin: str) -> None:
        self.source, self.origin = source, origin

    def create_module(self, spec: ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        code = compile(self.source, self.origin, "exec", dont_inherit=True)
        exec(code, module.__dict__)  # noqa: S102 - the project's own module, as import runs it

    def get_source(self, name: str) -> str:
        return self.source.decode("utf-8", errors="replace")


class _Finder:
    def __init__(self, code: CodeAt) -> None:
        self.code = code
        self.roots = (code.repo.top, *code.mirrors)
        self._folders: dict[str, dict[str, tuple[bool, str]] | None] = {}
        self._places: dict[str, str | None] = {}
        self.loaded: dict[str, ModuleType | None] = {}  # name -> the module it displaced
        self.displaced: dict[str, ModuleType] = {}

    # -- the finder ---------------------------------------------------------------------

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        tail = name.rpartition(".")[2]
        locations = [str(p) for p in (sys.path if path is None else path)]
        hits = {loc: self._at_commit(loc, tail) for loc in locations}
        if not any(hits.values()):
            return None  # nearly every import: the commit has nothing of that name here
        for location in locations:
            found = hits[location]
            on_disk = _module_on_disk(location, tail)
            if found is None:
                if on_disk is not None:
                    return None  # the working tree's, as Python would find it first
                continue
            if on_disk is not None and not _text_differs(on_disk, found.blob):
                return None  # the same text: the working tree's file, as Python finds it
            return self._spec(name, location, tail, found)
        return None

    def _spec(self, name: str, location: str, tail: str, found: _Found) -> ModuleSpec | None:
        source = self.code.repo.blob(found.blob)
        if source is None:
            return None
        origin = f"{self.code.commit[:12]}:{found.path}"
        loader = cast("Loader", _Loader(source, origin))
        spec = ModuleSpec(name, loader, origin=origin, is_package=found.package)
        if found.package:
            spec.submodule_search_locations = [os.path.join(location, tail)]
        self.loaded.setdefault(name, None)
        return spec

    def _at_commit(self, location: str, tail: str) -> _Found | None:
        folder = self._place(location)
        if folder is None:
            return None
        entries = self._folder(folder)
        if not entries:
            return None
        prefix = f"{folder}/" if folder else ""
        module = entries.get(f"{tail}.py")
        if module is not None and not module[0]:
            return _Found(f"{prefix}{tail}.py", module[1], package=False)
        if tail in entries and entries[tail][0]:
            init = (self._folder(f"{prefix}{tail}") or {}).get("__init__.py")
            if init is not None and not init[0]:
                return _Found(f"{prefix}{tail}/__init__.py", init[1], package=True)
        return None

    def _place(self, location: str) -> str | None:
        """The folder, relative to the top, that a search location stands for (None
        outside the repository and its mirrors)."""
        if location not in self._places:
            self._places[location] = None
            try:
                here = Path(location or os.getcwd()).resolve()
            except (OSError, RuntimeError):
                return None
            for root in self.roots:
                if here == root or root in here.parents:
                    rel = here.relative_to(root).as_posix()
                    self._places[location] = "" if rel == "." else rel
                    break
        return self._places[location]

    def _folder(self, rel: str) -> dict[str, tuple[bool, str]] | None:
        """Folder ``rel`` at the commit, read once; its parent first, so that a folder the
        commit lacks (a virtual environment inside the repository) costs no read."""
        if rel not in self._folders:
            entries = None
            parent, _, name = rel.rpartition("/")
            above = self._folder(parent) if rel else None
            if not rel or (above is not None and above.get(name, (False, ""))[0]):
                entries = self.code.repo.folder_at(self.code.commit, rel)
            self._folders[rel] = entries
        return self._folders[rel]

    # -- sys.modules ---------------------------------------------------------------------

    def displace(self) -> None:
        """Take out of ``sys.modules`` the modules of the migrations folders already
        imported from the working tree whose text the commit has otherwise."""
        top = str(self.code.repo.top)
        folders = [os.path.join(top, f) + os.sep for f in self.code.own if f]
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if not isinstance(file, str) or not file.startswith(tuple(folders)):
                continue
            rel = Path(file).relative_to(top).as_posix()
            folder, _, base = rel.rpartition("/")
            held = (self._folder(folder) or {}).get(base)
            if held is not None and not held[0] and _text_differs(file, held[1]):
                self.displaced[name] = module
                _unlink(name, module)

    def put_back(self) -> None:
        """Out of ``sys.modules``: what the commit's code loaded, and what was imported
        under it; back in: what it displaced."""
        ours = tuple(self.loaded)
        for name in list(sys.modules):
            if name in self.loaded or name.startswith(tuple(f"{n}." for n in ours)):
                _unlink(name, sys.modules[name])
        for name, module in self.displaced.items():
            sys.modules[name] = module
            parent, _, child = name.rpartition(".")
            if parent in sys.modules:
                setattr(sys.modules[parent], child, module)


def _unlink(name: str, module: ModuleType) -> None:
    """``name`` out of ``sys.modules`` and off its parent package, so that the next
    ``from package import name`` imports it again."""
    sys.modules.pop(name, None)
    parent, _, child = name.rpartition(".")
    holder = sys.modules.get(parent) if parent else None
    if holder is not None and getattr(holder, child, None) is module:
        with contextlib.suppress(AttributeError):
            delattr(holder, child)


def _module_on_disk(location: str, tail: str) -> str | None:
    """The file Python's own finder would load for ``tail`` in ``location``, if any."""
    folder = location or "."
    for suffix in _MODULE_SUFFIXES:
        path = os.path.join(folder, tail + suffix)
        if os.path.isfile(path):
            return path
    for suffix in (*SOURCE_SUFFIXES, *BYTECODE_SUFFIXES):
        path = os.path.join(folder, tail, "__init__" + suffix)
        if os.path.isfile(path):
            return path
    return None


def _text_differs(path: str, blob: str) -> bool:
    """Whether the file at ``path`` holds another text than blob ``blob`` (its id made as
    git makes it, SHA-1 or SHA-256 by its length)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return True
    digest = hashlib.sha256 if len(blob) == 64 else hashlib.sha1
    return digest(b"blob %d\0" % len(data) + data).hexdigest() != blob
