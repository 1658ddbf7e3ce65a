"""Scratch databases: made beside the live one (a temporary SQLite file, or a database
``bm_verify_…`` on its server), empty or a copy of it, and dropped afterwards, whatever
happens; those of killed runs found and dropped by the next."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from branchmig.errors import BranchmigError, DatabaseError, first_line
from branchmig.process import Progress
from branchmig.snapshots import backend_for_url
from branchmig.urls import copy_url, mask_url, sync_url
from branchmig.verify.results import quiet
from branchmig.verify.targets import supported_backend

SCRATCH_PREFIX = "bm_verify_"  # every scratch database's name starts so: a leftover is ours


class Scratch:
    """A scratch database beside the live one: ``url`` (password included: never print
    it), made empty again by ``reset``, gone after ``drop``."""

    def __init__(self, live_url: str, folder: Path, *, seeded: bool = False) -> None:
        from sqlalchemy.engine import make_url

        self.backend = supported_backend(live_url)
        self._live = make_url(live_url)
        self._live_url = live_url
        self._folder = folder
        self.name = scratch_name(os.getpid(), secrets.token_hex(4))
        # Seeded: a copy of the live database, made by its snapshot backend.
        self._copies = None if not seeded else _snapshot_backend(live_url, folder)
        self._key = f"verify-{secrets.token_hex(4)}"
        self._engine: Any = None  # to the server, once one connected
        # The live URL's driver (aiosqlite, asyncpg), for env.py.
        self.url = copy_url(
            live_url,
            self.backend,
            str(folder / "scratch.db") if self.backend == "sqlite" else self.name,
        )

    def create(self) -> None:
        if self._copies is not None:
            location = self._copies.save(self._key).location
            if self.backend != "sqlite" and "/" in location:
                raise DatabaseError(
                    f"The copy of {mask_url(self._live.render_as_string())} is a dump, not a "
                    "database: --data needs the right to create databases (CREATEDB)"
                )
            self.url = copy_url(self._live_url, self.backend, location)
            return
        if self.backend == "sqlite":
            return
        from sqlalchemy import text

        with self._server() as conn:
            if self.backend == "postgresql":
                conn.execute(text(f'CREATE DATABASE "{self.name}"'))
                return
            charset = conn.execute(
                text(
                    "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM "
                    "information_schema.SCHEMATA WHERE SCHEMA_NAME = :name"
                ),
                {"name": self._live.database},
            ).first()
            suffix = (
                f" CHARACTER SET {charset[0]} COLLATE {charset[1]}" if charset is not None else ""
            )
            conn.execute(text(f"CREATE DATABASE `{self.name}`{suffix}"))

    def drop(self) -> None:
        if self._copies is not None:
            self._copies.drop(self._key)
            return
        if self.backend == "sqlite":
            for path in self._folder.glob("scratch.db*"):
                path.unlink()
            return
        self.drop_database(self.name)

    def leftovers(self) -> list[str]:
        """The scratch databases on the server (any verify's, this one's included)."""
        if self.backend == "sqlite":
            return []
        from sqlalchemy import text

        with self._server() as conn:
            if self.backend == "mysql":
                rows = conn.execute(text("SHOW DATABASES LIKE 'bm\\_verify\\_%'"))
            else:
                rows = conn.execute(
                    text("SELECT datname FROM pg_database WHERE datname LIKE 'bm\\_verify\\_%'")
                )
            return sorted(str(r[0]) for r in rows)

    def drop_database(self, name: str) -> None:
        from sqlalchemy import text

        with self._server() as conn:
            if self.backend == "mysql":
                conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
                return
            try:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except Exception:  # noqa: BLE001 - PostgreSQL < 13 has no FORCE
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name"
                    ),
                    {"name": name},
                )
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))

    def reset(self) -> None:
        self.drop()
        self.create()

    @contextlib.contextmanager
    def _server(self) -> Iterator[Any]:
        """An autocommit connection to the live database's server, on a database that is
        there: the server's own (``postgres``, ``template1``), else (a role that may
        connect only there) the live one, which is thus opened only as a last resort."""
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url
        from sqlalchemy.pool import NullPool

        if self._engine is not None:  # the one that worked: its dialect is set up
            with self._engine.connect() as conn:
                yield conn
            return
        if self.backend == "mysql":
            candidates: list[str | None] = [None]
        else:
            candidates = ["postgres", "template1", self._live.database]
        failure: Exception | None = None
        server = make_url(sync_url(self._live.render_as_string(hide_password=False)))
        for database in candidates:
            try:
                engine = create_engine(
                    server._replace(database=database),  # None: no database
                    isolation_level="AUTOCOMMIT",
                    poolclass=NullPool,
                )
            except ImportError as err:
                extra = "postgres" if self.backend == "postgresql" else "mysql"
                raise DatabaseError(
                    f"The database driver is not installed ({err}); run: "
                    f"pip install 'branchmig[{extra}]'"
                ) from err
            try:
                conn = engine.connect()
            except Exception as err:  # noqa: BLE001 - try the next database
                failure = err
                engine.dispose()
                continue
            self._engine = engine  # NullPool: it holds no connection
            try:
                yield conn
            finally:
                conn.close()
            return
        raise DatabaseError(
            f"Cannot reach the server of {mask_url(self._live.render_as_string())} to make a "
            f"scratch database: {first_line(failure)}; check that it is running"
        )


def _snapshot_backend(live_url: str, folder: Path) -> Any:
    return backend_for_url(live_url, store_dir=folder)


@contextlib.contextmanager
def scratch_database(
    live_url: str, *, seeded: bool = False, progress: Progress = quiet
) -> Iterator[Scratch]:
    """A new scratch database of the live one's backend (on its server), empty or (with
    ``seeded``) a copy of the live one, dropped when the block ends, on an error, Ctrl-C
    or SIGTERM as well."""
    parent = None if seeded else _memory_folder()
    with (
        tempfile.TemporaryDirectory(prefix="branchmig-verify-", dir=parent) as folder,
        _sigterm_interrupts(),
    ):
        scratch = Scratch(live_url, Path(folder), seeded=seeded)
        try:
            for name in drop_dead_scratches(scratch):
                progress(f"branchmig: dropped the scratch database '{name}' of a verify killed")
        except Exception as err:  # noqa: BLE001 - a leftover never stops this run
            progress(
                "branchmig: warning: could not drop the scratch databases of killed runs: "
                f"{first_line(err)}"
            )
        try:
            scratch.create()
        except BranchmigError:
            raise
        except Exception as err:  # noqa: BLE001 - the server's refusal is the message
            raise DatabaseError(
                f"Cannot create a scratch database on the server of {mask_url(live_url)}: "
                f"{first_line(err)}; the user in the URL needs the right to create "
                "databases (CREATEDB)"
            ) from err
        try:
            yield scratch
        finally:
            try:
                scratch.drop()
            except Exception as err:  # noqa: BLE001 - do not hide the error that got here
                progress(
                    f"branchmig: warning: could not drop the scratch database "
                    f"'{scratch.name}': {first_line(err)}; drop it by hand"
                )


def _memory_folder(*, room: int = 512 << 20) -> str | None:
    """A folder in memory (Linux's /dev/shm) when it has ``room`` to spare: an empty
    SQLite scratch file lives there, as nothing of it needs to reach the disk (its every
    commit would wait for it). None: the system's temporary folder."""
    try:
        stat = os.statvfs("/dev/shm")
    except OSError:
        return None
    if stat.f_bavail * stat.f_frsize < room or not os.access("/dev/shm", os.W_OK):
        return None
    return "/dev/shm"


def scratch_name(pid: int, token: str) -> str:
    """``bm_verify_<pid>_<machine><boot>_<token>``: whose it is, so that a later run can
    tell a killed run's database (its machine, and a process gone or another boot) from
    a live one's."""
    machine, boot = _machine_and_boot()
    return f"{SCRATCH_PREFIX}{pid}_{machine}{boot}_{token}"


def _machine_and_boot() -> tuple[str, str]:
    import hashlib
    import socket

    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""  # not Linux: only the pid tells, on this machine
    machine = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
    return machine, hashlib.sha256(boot.encode()).hexdigest()[:6]


def scratch_is_dead(name: str) -> bool | None:
    """Whether the verify that made scratch database ``name`` is gone; None when this
    machine cannot tell (made on another machine, or by an earlier branchmig, whose names
    carry only a pid)."""
    parts = name[len(SCRATCH_PREFIX) :].split("_")
    if not name.startswith(SCRATCH_PREFIX) or len(parts) != 3 or not parts[0].isdigit():
        return None
    machine, boot = _machine_and_boot()
    if len(parts[1]) != 12 or parts[1][:6] != machine:
        return None
    if parts[1][6:] != boot:
        return True  # made before this machine started again
    try:
        os.kill(int(parts[0]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


def dead_scratches(live_url: str) -> list[str]:
    """The scratch databases of killed verify runs on the server of ``live_url``."""
    with tempfile.TemporaryDirectory(prefix="branchmig-verify-") as folder:
        return [n for n in Scratch(live_url, Path(folder)).leftovers() if scratch_is_dead(n)]


def drop_dead_scratches(scratch: Scratch) -> list[str]:
    """Drop the scratch databases of killed verify runs on ``scratch``'s server; their
    names."""
    dead = [name for name in scratch.leftovers() if scratch_is_dead(name)]
    for name in dead:
        scratch.drop_database(name)
    return dead


def drop_dead_scratches_of(live_url: str) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="branchmig-verify-") as folder:
        return drop_dead_scratches(Scratch(live_url, Path(folder)))


@contextlib.contextmanager
def scratch_databases(
    lives: Mapping[str, str], *, seeded: bool = False, progress: Progress = quiet
) -> Iterator[dict[str, Scratch]]:
    """A scratch database for each live one (by name; two on one URL share one), all
    dropped when the block ends."""
    with contextlib.ExitStack() as stack:
        made: dict[str, Scratch] = {}
        scratches: dict[str, Scratch] = {}
        for name, url in lives.items():
            if url not in made:
                made[url] = stack.enter_context(
                    scratch_database(url, seeded=seeded, progress=progress)
                )
            scratches[name] = made[url]
        yield scratches


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt meanwhile, so the scratch database is dropped when
    CI cancels a job too."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
