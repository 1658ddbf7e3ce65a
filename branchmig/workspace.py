"""A project opened in its repository: the graph of any ref, read from that ref's own
config and folders."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from branchmig.cache import CACHE_VERSION, HeaderCache, ScriptSetCache
from branchmig.errors import ConfigError
from branchmig.gitrepo import GitRepo
from branchmig.graph import Graph
from branchmig.layout import state_root
from branchmig.project import Locations, Project, find_project
from branchmig.scripts import (
    ScriptSet,
    cache_for,
    read_ref,
    read_worktree,
    script_set_cache_for,
    worktree_signature,
)

WORKTREE = ""  # the ref name for "the working tree, committed or not"


@dataclass
class Workspace:
    repo: GitRepo
    project: Project
    # By commit id, which names the same content forever: asked for twice in one run.
    _locations: dict[str, Locations] = field(default_factory=dict, repr=False)
    _signatures: dict[tuple[str, Locations], str] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, start: Path, *, config: Path | Sequence[Path] | None = None) -> Workspace:
        """The project from ``start``; ``config`` as ``-c`` names it (an alembic.ini, a
        pyproject.toml, or one of each)."""
        repo = GitRepo.discover(start)
        return cls(repo, find_project(start, repo_root=repo.top, config=config))

    @cached_property
    def cache(self) -> HeaderCache:
        return cache_for(self.repo)

    @cached_property
    def script_sets(self) -> ScriptSetCache:
        return script_set_cache_for(self.repo)

    @property
    def state_dir(self) -> Path:
        return state_root(self.repo.common_dir)

    def locations_at(self, commit: str | None) -> Locations:
        """The folders as the ref's own alembic.ini and pyproject.toml ``[tool.alembic]``
        name them (the working tree's when the ref has neither, or they name none)."""
        if commit is None:
            return self.project.locations()
        if commit not in self._locations:
            ini = self.repo.read_file(commit, self.project.config_rel)
            toml_rel = self.project.toml_rel
            toml = None if toml_rel is None else self.repo.read_file(commit, toml_rel)
            try:
                found = (
                    self.project.locations()
                    if ini is None and toml is None
                    else self.project.locations_from(_text(ini), _text(toml))
                )
            except (ConfigError, UnicodeDecodeError):
                found = self.project.locations()
            self._locations[commit] = found
        return self._locations[commit]

    def prefetch(self, commits: Iterable[str]) -> None:
        """Learn the folders and signatures of many commits in two git runs, so that
        ``scripts_at_commit`` of each then asks git nothing when its scripts were read
        before (``status`` asks it of every branch that has a snapshot)."""
        asked = list(dict.fromkeys(commits))
        todo = [c for c in asked if c not in self._locations]
        toml = self.project.toml_rel
        configs = (self.project.config_rel, *([toml] if toml else []))
        if todo:
            ids = self.repo.object_ids([f"{c}:{p}" for c in todo for p in configs])
            parsed: dict[tuple[str | None, ...], Locations] = {}
            for n, commit in enumerate(todo):
                blobs = tuple(ids[n * len(configs) : (n + 1) * len(configs)])
                if blobs in parsed:  # the same files say the same folders
                    self._locations[commit] = parsed[blobs]
                else:
                    parsed[blobs] = self.locations_at(commit)
        unsigned = [
            (c, self._locations[c])
            for c in asked
            if c in self._locations and (c, self._locations[c]) not in self._signatures
        ]
        specs = [[f"{c}:{p}" for p in (*configs, *locs.version_locations)] for c, locs in unsigned]
        ids = self.repo.object_ids([s for group in specs for s in group])
        at = 0
        for (commit, locs), group in zip(unsigned, specs, strict=True):
            paths = (*configs, *locs.version_locations)
            found = ids[at : at + len(group)]
            at += len(group)
            self._signatures[commit, locs] = _signature_text(locs, paths, found)

    def scripts_at(self, ref: str = WORKTREE, *, signature: str | None = None) -> ScriptSet:
        """The scripts at ``ref``; ``signature`` is ``self.signature(ref)`` when the
        caller has it already."""
        if ref == WORKTREE:
            signature = signature or self.signature(WORKTREE)
            found = self.script_sets.get(signature)
            if found is not None:
                return ScriptSet(ref="", commit=None, revisions=found[0], warnings=found[1])
            locs = self.project.locations()
            scripts = read_worktree(
                self.repo.top,
                locs.version_locations,
                recursive=locs.recursive,
                cache=self.cache,
                object_format=self.repo.format.object_format,
            )
            if self.still_signs(signature):
                self.script_sets.put(signature, scripts.revisions, scripts.warnings)
            return scripts
        commit = self.repo.resolve(ref)
        return self.scripts_at_commit(commit, ref=ref)

    def scripts_at_commit(self, commit: str, *, ref: str = "") -> ScriptSet:
        locs = self.locations_at(commit)
        signature = self._commit_signature(commit, locs)
        found = self.script_sets.get(signature)
        if found is not None:
            return ScriptSet(
                ref=ref or commit, commit=commit, revisions=found[0], warnings=found[1]
            )
        scripts = read_ref(
            self.repo,
            commit,
            locs.version_locations,
            recursive=locs.recursive,
            cache=self.cache,
            ref=ref or commit,
        )
        self.script_sets.put(signature, scripts.revisions, scripts.warnings)
        return scripts

    def graph_at(
        self, ref: str = WORKTREE, *, signature: str | None = None
    ) -> tuple[ScriptSet, Graph]:
        scripts = self.scripts_at(ref, signature=signature)
        return scripts, Graph.build(scripts.revisions)

    def signature(self, ref: str = WORKTREE) -> str:
        """What identifies the scripts at ``ref`` without reading them: the folders' tree
        ids (and the blobs of alembic.ini and pyproject.toml) at a commit, the files'
        stats in the working tree (the content of those too recent for their stat)."""
        if ref == WORKTREE:
            locs = self.project.locations()
            sig, racy = worktree_signature(
                self.repo.top,
                locs.version_locations,
                recursive=locs.recursive,
                object_format=self.repo.format.object_format,
            )
            return f"{_RACY if racy else 'wt:'}{sig}"
        commit = self.repo.resolve(ref)
        return self._commit_signature(commit, self.locations_at(commit))

    def still_signs(self, signature: str) -> bool:
        """Whether what was read under ``signature`` may be remembered by it: a working
        tree file signed by its content may have changed between signing and reading,
        so such a signature must come out the same again."""
        return not signature.startswith(_RACY) or self.signature(WORKTREE) == signature

    def _commit_signature(self, commit: str, locs: Locations) -> str:
        if (commit, locs) not in self._signatures:
            toml = self.project.toml_rel
            paths = (self.project.config_rel, *([toml] if toml else []), *locs.version_locations)
            ids = self.repo.object_ids([f"{commit}:{p}" for p in paths])
            self._signatures[commit, locs] = _signature_text(locs, paths, ids)
        return self._signatures[commit, locs]

    def show_alembic_log(self) -> None:
        """Let Alembic's own INFO lines through for this run (``alembic_log = true``)."""
        settings = replace(self.project.settings, alembic_log=True)
        self.project = replace(self.project, settings=settings)

    def close(self) -> None:
        self.repo.close()


_RACY = "wt~:"  # a working tree signature with a file signed by its content


def _signature_text(locs: Locations, paths: Sequence[str], ids: Sequence[str | None]) -> str:
    # The version: an answer remembered by an older reading of the same trees is not
    # this one's.
    return f"ref{CACHE_VERSION}:{locs.recursive}:" + ":".join(
        f"{p}={i or '-'}" for p, i in zip(paths, ids, strict=True)
    )


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8")


def describe_ref(ref: str) -> str:
    return "the working tree" if ref == WORKTREE else f"'{ref}'"
