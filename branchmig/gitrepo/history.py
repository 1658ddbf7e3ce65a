"""Questions about commits' history: ancestry, the branches holding a commit, merges."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from branchmig.gitrepo.base import RepoBase


class History(RepoBase):
    """What history says about commits and the branches holding them."""

    def changed_between(self, a: str, b: str) -> set[str]:
        """The paths whose content differs between commits ``a`` and ``b``."""
        return {p for p in self._git("diff", "--name-only", "-z", a, b).split("\0") if p}

    def branch_tips(self) -> dict[str, str]:
        """Every local branch's exact name and tip commit."""
        out = self._git("for-each-ref", "--format=%(objectname) %(refname)", "refs/heads")
        tips = {}
        for line in out.splitlines():
            commit, _, ref = line.partition(" ")
            tips[ref.removeprefix("refs/heads/")] = commit
        return tips

    def is_ancestor(self, ancestor: str, commit: str) -> bool:
        return self._proc("merge-base", "--is-ancestor", ancestor, commit).returncode == 0

    def branches_containing(self, commit: str) -> list[str]:
        out = self._git(
            "for-each-ref", f"--contains={commit}", "--format=%(refname)", "refs/heads", check=False
        )
        return [line.removeprefix("refs/heads/") for line in out.splitlines() if line]

    def branches_containing_each(
        self, commits: Iterable[str], tips: Mapping[str, str] | None = None
    ) -> dict[str, list[str]]:
        """For each of ``commits``, the branches whose history holds it, in two git runs
        whatever their number: the history between the commits' common ancestor and the
        branch tips, walked here (one ``for-each-ref --contains`` per commit costs a
        process each). ``tips``: ``branch_tips()`` when the caller has it."""
        wanted = list(dict.fromkeys(commits))
        if len(wanted) < 2:
            return {c: self.branches_containing(c) for c in wanted}
        tips = self.branch_tips() if tips is None else tips
        base = self._git("merge-base", "--octopus", *wanted, check=False).split()
        if not base:  # unrelated histories, or a commit gc took: ask one by one
            return {c: self.branches_containing(c) for c in wanted}
        # Everything a tip reaches that the common ancestor's parents do not: every path
        # from a tip down to a wanted commit runs through descendants of that ancestor.
        out = self._git(
            "rev-list", "--parents", *sorted(set(tips.values())), "--not", f"{base[0]}^@"
        )
        children: dict[str, list[str]] = {}
        for line in out.splitlines():
            commit, *parents = line.split()
            children.setdefault(commit, [])
            for parent in parents:
                children.setdefault(parent, []).append(commit)
        by_tip: dict[str, list[str]] = {}
        for name, tip in sorted(tips.items()):
            by_tip.setdefault(tip, []).append(name)
        found: dict[str, list[str]] = {}
        for commit in wanted:
            seen, todo = set(), [commit] if commit in children else []
            while todo:
                current = todo.pop()
                if current not in seen:
                    seen.add(current)
                    todo.extend(children[current])
            found[commit] = sorted(n for tip in seen & by_tip.keys() for n in by_tip[tip])
        return found

    def refs_containing(self, commit: str, namespace: str) -> list[str]:
        """The short names (``feature1``, ``origin/main``) of the refs under ``namespace``
        (``refs/heads``, ``refs/remotes``) whose history holds ``commit``."""
        return self._git(
            "for-each-ref",
            "--format=%(refname:short)",
            "--contains",
            commit,
            namespace,
            check=False,
        ).split()

    def count_commits(self, since: str, until: str) -> int:
        """How many commits ``until`` has that ``since`` has not (0 when either is unknown)."""
        out = self._git("rev-list", "--count", f"{since}..{until}", check=False).strip()
        return int(out or 0)

    def commit_adding(self, path: str, start: str = "HEAD") -> str | None:
        """The newest commit in ``start``'s history that added ``path``."""
        out = self._git(
            "log", "-1", "--format=%H", "--diff-filter=A", start, "--", path, check=False
        ).strip()
        return out or None

    def latest_merge(self, commit: str = "HEAD") -> str | None:
        """The newest merge commit on ``commit``'s first-parent line (itself included)."""
        out = self._git(
            "rev-list", "--first-parent", "--merges", "-n", "1", commit, check=False
        ).strip()
        return out or None

    def parents(self, commit: str) -> list[str]:
        """The parents of ``commit``, first parent first."""
        return self._git("rev-list", "--parents", "-n", "1", commit).split()[1:]

    def second_parent(self, commit: str = "HEAD") -> str | None:
        """The merged commit of a merge commit; None for any other commit."""
        out = self._git("rev-parse", "--verify", "--quiet", f"{commit}^2", check=False).strip()
        return out or None
