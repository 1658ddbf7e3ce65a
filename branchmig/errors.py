"""The exceptions branchmig raises. As Alembic's revision exceptions do
(``MultipleHeads(heads, argument)``), an error that has facts keeps them as fields and
makes its line from them; the CLI renders that line (``str(err)``) and, under ``--json``,
the fields too (``err.facts()``). Nothing rewrites an error's text after it is raised;
what to type next, where it depends on who asked (the command line, the git hook), is
added by that caller from the facts (``conventions.error_line``, ``hookrun``)."""

from __future__ import annotations

from typing import Any, Literal


class BranchmigError(Exception):
    """A problem the user can act on. ``exit_code`` is 1 (could not be done) or 2 (usage)."""

    exit_code = 1

    def facts(self) -> dict[str, Any]:
        """The error's fields, for ``--json`` (besides its line and exit code)."""
        return {}


def first_line(err: BaseException | None) -> str:
    """``Type: first line`` of any exception: how a foreign error (a driver's, a
    migration's) is named inside branchmig's own one-line messages."""
    if err is None:
        return "unknown error"
    text = str(err).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


class UsageError(BranchmigError):
    exit_code = 2


class ConfigError(BranchmigError):
    """No project found, a bad alembic.ini or [tool.branchmig] table."""

    exit_code = 2


class NoProjectError(ConfigError):
    """No alembic.ini and no Flask-Migrate folder where branchmig looked."""


class GitError(BranchmigError):
    """Not a git repository, an unknown ref, a dirty tree, a failed checkout."""


class UnknownRefError(GitError):
    exit_code = 2


class NotARepositoryError(GitError):
    """Run outside any git repository: a usage error, as the README says."""

    exit_code = 2


class ScriptError(BranchmigError):
    """A migration script whose header cannot be read."""


class GraphError(BranchmigError):
    """A revision graph that cannot be used: cycle, duplicate id, missing parent."""


class CycleError(GraphError):
    """Revisions that need each other, as Alembic's ``CycleDetected``: no history with one
    can be loaded by Alembic, so nothing is planned or run on it."""

    def __init__(self, cycle: tuple[str, ...], paths: tuple[str, ...]) -> None:
        super().__init__(cycle, paths)
        self.cycle = cycle
        self.paths = paths

    def __str__(self) -> str:
        loop = " -> ".join((*self.cycle, self.cycle[0]))
        files = ", ".join(f"'{p}'" for p in dict.fromkeys(self.paths))
        return (
            f"Revisions form a cycle: {loop} (in {files}); Alembic refuses such a history. "
            "Point the down_revision of one of them at an earlier revision, then run: "
            "branchmig check"
        )

    def facts(self) -> dict[str, Any]:
        return {"cycle": list(self.cycle), "paths": list(self.paths)}


class PlanError(BranchmigError):
    """No way to move the database where it was asked to go."""


class DatabaseError(BranchmigError):
    """The database could not be reached or a migration failed."""


class ScriptLoadError(DatabaseError):
    """A migration script raised while it was loaded (an import it makes, a syntax error):
    the script's own, not the environment's."""

    def __init__(self, message: str, *, path: str, revision: str, cause: str) -> None:
        super().__init__(message)
        self.path = path
        self.revision = revision
        self.cause = cause

    def facts(self) -> dict[str, Any]:
        return {"path": self.path, "revision": self.revision, "failure": self.cause}


Direction = Literal["upgrade", "downgrade"]


class StepFailed(DatabaseError):
    """A migration raised ``cause`` (its first line); ``completed`` is what ran before."""

    def __init__(
        self, *, revision: str, direction: Direction, completed: tuple[str, ...], cause: str
    ) -> None:
        super().__init__(revision, direction, completed, cause)
        self.revision = revision
        self.direction = direction
        self.completed = completed
        self.cause = cause

    def __str__(self) -> str:
        return f"{self.direction.capitalize()} of '{self.revision}' failed: {self.cause}"

    def facts(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "direction": self.direction,
            "completed": list(self.completed),
            "failure": self.cause,
        }


class NotAsRemembered(DatabaseError):
    """env.py connects to another database, or finds it at other revisions, than the one
    branchmig remembered and acted on without running env.py: checked before any step."""


class SnapshotError(BranchmigError):
    """A snapshot could not be saved, restored or dropped."""


class SessionsBlockingError(SnapshotError):
    """Other sessions hold the live database open, so it cannot be copied or renamed.
    ``message`` says what and who, ``sessions`` names each; what to do about them is the
    caller's to say (the command line and the git hook advise differently)."""

    def __init__(self, message: str, *, sessions: list[str]) -> None:
        super().__init__(message)
        self.message = message
        self.sessions = sessions

    def facts(self) -> dict[str, Any]:
        return {"sessions": list(self.sessions)}


class LockedError(BranchmigError):
    """Another branchmig process holds the lock on this repository."""


class StateError(BranchmigError):
    """What branchmig keeps under ``.git/branchmig`` could not be written (a full disk)."""


class MoveFailed(BranchmigError):
    """A switch or sync (or its rehearsal) that failed, and what became of the database:
    put back as it was (``restored``), or left at ``heads`` after the last step that
    completed, ``half_made`` perhaps half made. ``cause`` is what failed, ``fix`` what to
    change in the script, ``then`` what to type next."""

    def __init__(
        self,
        cause: BaseException,
        *,
        restored: bool,
        heads: tuple[str, ...] | None = None,
        half_made: str | None = None,
        then: str | None = None,
        fix: str | None = None,
        earlier_suspect: str | None = None,
        rehearsal: bool = False,
        restore_failed: str | None = None,
        snapshot: str | None = None,
        tried: tuple[str, ...] = (),
    ) -> None:
        super().__init__(cause)
        self.cause = cause
        self.restored = restored
        self.heads = heads
        self.half_made = half_made
        self.then = then
        self.fix = fix
        self.earlier_suspect = earlier_suspect
        self.rehearsal = rehearsal
        self.restore_failed = restore_failed
        self.snapshot = snapshot
        self.tried = tried  # a revert's texts, each tried and put back ("blob from where")
        self.exit_code = cause.exit_code if isinstance(cause, BranchmigError) else 1

    def __str__(self) -> str:
        return self.line(str(self.cause))

    def line(self, cause: str) -> str:
        """The error's line, with ``cause`` as the cause's own line (the CLI's, with its
        advice, where it gives one)."""
        said = cause.rstrip(". ")
        if self.rehearsal:
            fix = f". To fix it: {self.fix}" if self.fix else ""
            tried = f". {_tried(self.tried)}; {self.then}" if self.tried else ""
            return (
                f"The rehearsal on a copy of the database failed: {said}{fix}. Nothing "
                f"changed: the live database was not touched{tried}"
            )
        if self.restore_failed is not None:
            return (
                f"{said}; restoring the snapshot '{self.snapshot}' failed too: "
                f"{self.restore_failed.rstrip('. ')}. Run: branchmig snapshot restore "
                f"{self.snapshot}"
            )
        if self.restored:
            line = f"{said}. Nothing changed: the database is as it was before"
            if self.tried:
                line += f". {_tried(self.tried)}; {self.then}"
        elif self.heads is not None:
            at = ", ".join(f"'{h}'" for h in self.heads) or "base (no revision)"
            half = (
                f" ('{self.half_made}' may be half made where DDL is not transactional: "
                "check its tables)"
                if self.half_made
                else ""
            )
            line = (
                f"{said}. The database is left at {at}, the last revision that "
                f"completed{half}; {self.then}"
            )
        else:
            line = said
        if self.earlier_suspect:
            line += f" ({self.earlier_suspect})"
        if self.fix:
            line += f". To fix it: {self.fix}"
        return line

    def facts(self) -> dict[str, Any]:
        cause = self.cause.facts() if isinstance(self.cause, BranchmigError) else {}
        return {
            "cause": type(self.cause).__name__,
            **cause,
            "restored": self.restored,
            "heads": None if self.heads is None else list(self.heads),
            "half_made": self.half_made,
            "fix": self.fix,
            "snapshot": self.snapshot,
            "restore_failed": self.restore_failed,
            "texts_tried": list(self.tried),
        }


def _tried(texts: tuple[str, ...]) -> str:
    if len(texts) == 1:
        return f"The revert was tried with its only text ({texts[0]}): it does not fit the database"
    return (
        f"The revert was tried with each of its {len(texts)} texts ({', '.join(texts)}), "
        "the database put back each time: none fits it"
    )
