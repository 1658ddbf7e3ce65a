"""Fixtures shared by the whole suite, registered once here as plugins.

``gitutil``: real git repositories holding real Alembic projects, for the analyzer's
tests; ``e2e_projects``: the seed scenario's Alembic and Flask-Migrate projects for the
end-to-end tests; ``db_servers``: the PostgreSQL and MySQL servers; ``backends``: the
``backend`` fixture over SQLite, PostgreSQL and MariaDB, for behaviours written once. Test
modules import only their plain helpers (functions, constants, classes), never a fixture.
``gitutil`` comes before ``e2e_projects``, which imports it, and both before ``backends``,
so that pytest rewrites the asserts of all three.
"""

pytest_plugins = ["db_servers", "gitutil", "e2e_projects", "backends"]
