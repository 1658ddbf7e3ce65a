"""Git's objects: refs resolved, trees listed, blobs and folders read, through one
long-lived ``cat-file --batch`` or one run for many."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from branchmig.errors import GitError, UnknownRefError
from branchmig.gitrepo.base import RepoBase, git_env, last_line

if TYPE_CHECKING:
    import subprocess


@dataclass(frozen=True)
class TreeEntry:
    path: str  # relative to the repository's top level, posix
    blob: str


class Objects(RepoBase):
    """Reading git's objects; ``close`` ends the long-lived ``cat-file``."""

    def resolve(self, ref: str) -> str:
        """The commit id ``ref`` names; ``UnknownRefError`` when it names none."""
        out = self._git(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}", check=False
        ).strip()
        if not out:
            raise UnknownRefError(
                f"Unknown git ref '{ref}': no branch, tag or commit of that name "
                "(see 'git branch -a')"
            )
        return out

    def ls_tree(
        self, commit: str, paths: Sequence[str], *, recursive: bool = True
    ) -> list[TreeEntry]:
        """The blobs under ``paths`` at ``commit`` (paths relative to the top level)."""
        if not paths:
            return []
        out = self._proc("ls-tree", "-r", "-z", "--full-tree", commit, "--", *paths)
        if out.returncode != 0:
            raise GitError(
                f"Cannot list {', '.join(paths)} at {commit[:12]}: "
                f"{out.stderr.decode(errors='replace').strip()}"
            )
        entries = []
        wanted = [p.rstrip("/") + "/" for p in paths]
        for record in out.stdout.split(b"\0"):
            if not record:
                continue
            meta, _, name = record.partition(b"\t")
            mode, kind, sha = meta.split()
            if kind != b"blob" or mode == b"120000":
                continue
            path = name.decode("utf-8", errors="surrogateescape")
            if not recursive and not any(
                "/" not in path[len(w) :] for w in wanted if path.startswith(w)
            ):
                continue
            entries.append(TreeEntry(path, sha.decode()))
        return entries

    def object_ids(self, specs: Sequence[str]) -> list[str | None]:
        """The object id of each ``commit:path`` spec (None where it names nothing), in
        one ``cat-file --batch-check`` run."""
        if not specs:
            return []
        proc = self._proc(
            "cat-file",
            "--batch-check=%(objectname)",
            input="".join(f"{s}\n" for s in specs).encode(),
        )
        lines = proc.stdout.decode(errors="surrogateescape").splitlines()
        if proc.returncode != 0 or len(lines) != len(specs):
            raise GitError(f"git cat-file --batch-check failed: {last_line(proc.stderr)}")
        return [None if " " in line else line for line in lines]

    def read_blobs(
        self, blobs: Iterable[str], *, missing_ok: bool = False
    ) -> Iterator[tuple[str, bytes]]:
        """The content of each blob, read in one ``cat-file --batch`` run (one pipe read
        for all of them is what keeps a cold 5,000-script history fast)."""
        pending = list(dict.fromkeys(blobs))
        if not pending:
            return
        proc = self._proc("cat-file", "--batch", input="".join(f"{b}\n" for b in pending).encode())
        out, pos = proc.stdout, 0
        for blob in pending:
            end = out.index(b"\n", pos)
            parts = out[pos:end].split()
            if len(parts) != 3:
                if missing_ok:
                    pos = end + 1
                    continue
                raise GitError(f"git cat-file: object {blob} is missing")
            size = int(parts[2])
            yield blob, out[end + 1 : end + 1 + size]
            pos = end + 1 + size + 1

    def read_file(self, commit: str, path: str) -> bytes | None:
        found = self._object(f"{commit}:{path}")
        return None if found is None else found[2]

    def folder_at(self, commit: str, path: str) -> dict[str, tuple[bool, str]] | None:
        """The entries of folder ``path`` (relative to the top level; "" for the top) at
        ``commit``: name -> (whether it is a folder, its object id), symbolic links and
        submodules left out; None where ``commit`` has no such folder."""
        found = self._object(f"{commit}:{path}" if path else f"{commit}^{{tree}}")
        if found is None or found[1] != "tree":
            return None
        return _tree_entries(found[2], len(found[0]) // 2)

    def blob(self, object_id: str) -> bytes | None:
        """The content of blob ``object_id``; None when git has no such blob."""
        found = self._object(object_id)
        return found[2] if found is not None and found[1] == "blob" else None

    def _object(self, spec: str) -> tuple[str, str, bytes] | None:
        """(object id, type, content) of what ``spec`` names, read through the one
        long-lived ``cat-file --batch``; None when it names nothing."""
        batch = self._cat_file()
        assert batch.stdin is not None and batch.stdout is not None
        batch.stdin.write(f"{spec}\n".encode())
        batch.stdin.flush()
        header = batch.stdout.readline()
        if header.endswith((b" missing\n", b" ambiguous\n")):
            return None
        parts = header.split()
        size = int(parts[2])
        data = batch.stdout.read(size)
        batch.stdout.read(1)
        return parts[0].decode(), parts[1].decode(), data

    def _cat_file(self) -> subprocess.Popen[bytes]:
        if self._batch is None or self._batch.poll() is not None:
            import subprocess

            self._batch = subprocess.Popen(
                ["git", "-C", str(self.top), "cat-file", "--batch"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=git_env(self._env),
            )
        return self._batch

    def close(self) -> None:
        if self._batch is not None:
            if self._batch.stdin:
                self._batch.stdin.close()
            self._batch.wait()
            if self._batch.stdout:
                self._batch.stdout.close()
            self._batch = None


def _tree_entries(data: bytes, id_size: int) -> dict[str, tuple[bool, str]]:
    """A tree object's entries (``<mode> <name>\\0<raw id>`` each): name -> (folder?,
    object id), files and folders only."""
    entries: dict[str, tuple[bool, str]] = {}
    pos = 0
    while pos < len(data):
        space = data.index(b" ", pos)
        nul = data.index(b"\0", space)
        mode = data[pos:space]
        name = data[space + 1 : nul].decode("utf-8", errors="surrogateescape")
        oid = data[nul + 1 : nul + 1 + id_size].hex()
        pos = nul + 1 + id_size
        if mode == b"40000":
            entries[name] = (True, oid)
        elif mode in (b"100644", b"100755"):
            entries[name] = (False, oid)
    return entries
