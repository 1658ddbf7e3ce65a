"""Fixtures shared by the whole suite, registered once here as plugins.

``gitutil``: real git repositories holding real Alembic projects, for the analyzer's
tests; ``e2e_projects``: the seed scenario's Alembic and Flask-Migrate projects for the
end-to-end tests; ``db_servers``: the PostgreSQL and MySQL servers; ``backends``: the
``backend`` fixture over SQLite, PostgreSQL and MariaDB, for behaviours written once. Test
modules import only their plain helpers (functions, constants, classes), never a fixture.
``gitutil`` comes before ``e2e_projects``, which imports it, and both before ``backends``,
so that pytest rewrites the asserts of all three.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["db_servers", "gitutil", "e2e_projects", "backends"]


def pytest_configure(config: object) -> None:
    """branchmig's bytecode compiled once, as ``pip install`` leaves it, before any test
    starts a branchmig process. Machines that set PYTHONDONTWRITEBYTECODE (this project's
    CI among them) would otherwise have every one of the suite's thousands of branchmig
    and hook processes compile its modules again, 60-70 ms each, which no installed copy
    pays. Those processes still write no bytecode of their own: the projects' env.py and
    scripts are compiled afresh each time, as a rewritten script must be."""
    if hasattr(config, "workerinput"):  # an xdist worker: the controller compiled them
        return
    import compileall

    import branchmig

    compileall.compile_dir(str(Path(branchmig.__file__).parent), quiet=1)


@pytest.fixture(autouse=True)
def _alone_when_marked(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test marked ``alone`` runs while no other test of this run does: every test holds
    a shared lock on one file for its duration, an ``alone`` one an exclusive lock. (A
    verify on a server drops the scratch databases of killed verifies; the test that makes
    such leftovers to watch them go must not have another worker's verify take them.)"""
    if not hasattr(request.config, "workerinput"):
        yield  # one process: nothing else runs meanwhile
        return
    import fcntl

    root = request.getfixturevalue("tmp_path_factory").getbasetemp().parent
    alone = request.node.get_closest_marker("alone") is not None
    with open(root / "alone.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        yield
