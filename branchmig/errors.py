"""The exceptions branchmig raises; the CLI turns them into one line and an exit code."""

from __future__ import annotations


class BranchmigError(Exception):
    """A problem the user can act on. ``exit_code`` is 1 (could not be done) or 2 (usage)."""

    exit_code = 1


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


class PlanError(BranchmigError):
    """No way to move the database where it was asked to go."""


class DatabaseError(BranchmigError):
    """The database could not be reached or a migration failed."""


class SnapshotError(BranchmigError):
    """A snapshot could not be saved, restored or dropped."""


class LockedError(BranchmigError):
    """Another branchmig process holds the lock on this repository."""


class StateError(BranchmigError):
    """What branchmig keeps under ``.git/branchmig`` could not be written (a full disk)."""
