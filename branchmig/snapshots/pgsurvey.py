"""What ``status`` and ``snapshot list`` ask a PostgreSQL server, in one round trip and
without importing a driver: the live database's ``alembic_version``, the snapshot
databases (found by their comment, with their sizes) and the scratch databases of
``verify``. Importing psycopg costs this machine 0.2-0.3 s, more than the whole answer;
``psql`` (which the dump fallback needs anyway) connects with the same libpq, the same
parameters and the same environment (``PGPASSWORD``, ``~/.pgpass``, ``PGOPTIONS``…).

The names and the comment that mark a snapshot database live here too, so that the
backend (``postgresql.py``) and this survey read them by the same rule. Any failure
(no ``psql``, the server down, the database gone) is None: the caller then goes the full
way, through env.py and the backend, which explain what is wrong.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from branchmig.snapshots.base import KEY_PATTERN, StoredSnapshot, check_key, short_hash
from branchmig.snapshots.base import truncate_utf8 as _truncate
from branchmig.snapshots.folder import SnapshotFolder

MAX_NAME_BYTES = 63
SNAPSHOT_INFIX = "__bm_"
COMMENT_PREFIX = "branchmig snapshot "
BACKEND = "postgresql"
SURVEY_TIMEOUT_SECONDS = 30


def snapshot_database_name(live: str, key: str) -> str:
    """``<live>__bm_<key>``, or a hashed short form of ``live`` when that exceeds 63 bytes."""
    name = f"{live}{SNAPSHOT_INFIX}{check_key(key)}"
    if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    # 9 + 1 + 8 + len("__bm_") + 40 (longest key) = 63.
    return f"{_truncate(live, 9)}_{short_hash(live)}{SNAPSHOT_INFIX}{key}"


def marker(live: str, key: str) -> str:
    """The comment a snapshot database carries: which live database, which key."""
    return COMMENT_PREFIX + json.dumps({"live": live, "key": key}, ensure_ascii=False)


def snapshots_in(live: str, rows: Iterable[tuple[str, str | None, int]]) -> list[StoredSnapshot]:
    """The snapshots of ``live`` among (datname, comment, size) rows of ``pg_database``."""
    found = []
    for datname, comment, size in rows:
        if not comment or not comment.startswith(COMMENT_PREFIX):
            continue
        try:
            facts = json.loads(comment[len(COMMENT_PREFIX) :])
            owner, key = facts["live"], facts["key"]
        except (ValueError, KeyError, TypeError):
            continue
        if (
            owner == live
            and isinstance(key, str)
            and KEY_PATTERN.fullmatch(key)
            and datname == snapshot_database_name(live, key)
        ):
            found.append(StoredSnapshot(key, BACKEND, datname, int(size)))
    return found


def dump_snapshots(folder: SnapshotFolder, prefix: str) -> list[StoredSnapshot]:
    """The dump files of a role that may not create databases, named ``<prefix><key>.dump``."""
    found = []
    for path in folder.files(prefix, ".dump"):
        key = path.name[len(prefix) : -len(".dump")]
        if KEY_PATTERN.fullmatch(key):
            found.append(StoredSnapshot(key, BACKEND, str(path), path.stat().st_size))
    return found


@dataclass(frozen=True)
class Target:
    """How to reach the live database as the backend does: libpq's parameters (without
    the password), the password, the live database's name and its dump files' prefix."""

    params: Mapping[str, str]
    password: str | None
    live: str
    dump_prefix: str

    def as_json(self) -> dict[str, object]:
        return {
            "params": dict(self.params),
            "password": self.password,
            "live": self.live,
            "dump_prefix": self.dump_prefix,
        }

    @classmethod
    def from_json(cls, data: object) -> Target | None:
        if not isinstance(data, dict):
            return None
        params, password = data.get("params"), data.get("password")
        live, prefix = data.get("live"), data.get("dump_prefix")
        if not (
            isinstance(params, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in params.items())
            and (password is None or isinstance(password, str))
            and isinstance(live, str)
            and isinstance(prefix, str)
        ):
            return None
        return cls(params, password, live, prefix)


@dataclass(frozen=True)
class Reach:
    """How libpq reaches the database a SQLAlchemy URL names: its parameters (the URL's
    query, host, port and user), the URL's password, where it is (for messages) and the
    prefix of its dump files. The backend connects by it; the survey by its ``target``."""

    live: str
    params: Mapping[str, str]
    password: str | None
    where: str
    dump_prefix: str

    @classmethod
    def of_url(cls, parsed: Any) -> Reach:
        """From the ``URL`` of ``urls.parse_server_url``."""
        live: str = parsed.database
        params: dict[str, str] = {}
        for option, value in parsed.query.items():
            params[option] = value if isinstance(value, str) else ",".join(value)
        for option, given in (
            ("host", parsed.host),
            ("port", parsed.port),
            ("user", parsed.username),
        ):
            if given is not None:
                params[option] = str(given)
        password = parsed.password if parsed.password is None else str(parsed.password)
        host = params.get("host", "local socket")
        where = f"{host}:{params['port']}" if "port" in params else host
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", live)[:40]
        return cls(live, params, password, where, f"pg-{safe}-{short_hash(f'{where}/{live}')}__")

    def target(self) -> Target:
        params = dict(self.params)
        password = params.pop("password", None) if self.password is None else self.password
        return Target(params, password, self.live, self.dump_prefix)


@dataclass(frozen=True)
class Survey:
    heads: tuple[str, ...]  # sorted; () without alembic_version
    snapshots: tuple[StoredSnapshot, ...]  # by key, dump files included
    others: tuple[str, ...]  # the names asked for by prefix (verify's scratch databases)


def survey(
    target: Target, *, folder: SnapshotFolder, others_prefix: str | None = None
) -> Survey | None:
    """The live database's heads, its snapshots and the databases named ``others_prefix…``
    on its server, from one ``psql`` run; None when that cannot be had."""
    prefix = others_prefix or ""
    like = prefix.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")
    others = f" OR d.datname LIKE {_literal(like)} || '%'" if others_prefix else ""
    script = "\n".join(
        (
            "SELECT to_regclass('alembic_version') IS NOT NULL AS bm_has \\gset",
            "\\if :bm_has",
            "SELECT 'v', version_num, '', 0 FROM alembic_version;",
            "\\endif",
            "SELECT 'd', d.datname, coalesce(shobj_description(d.oid, 'pg_database'), ''),",
            "  CASE WHEN has_database_privilege(d.oid, 'CONNECT')",
            "       THEN pg_database_size(d.oid) ELSE 0 END",
            "FROM pg_database d",
            f"WHERE shobj_description(d.oid, 'pg_database') LIKE {_literal(COMMENT_PREFIX)} "
            f"|| '%'{others};",
            "",
        )
    )
    import subprocess  # ~2 ms that a SQLite project's moves (which import this) never need

    argv = ["psql", "-X", "-q", "-A", "-t", "-z", "-0", "-v", "ON_ERROR_STOP=1"]
    argv += ["-d", conninfo({**target.params, "dbname": target.live}), "-f", "-"]
    try:
        done = subprocess.run(
            argv,
            input=script.encode(),
            env=_environment(target.password),
            capture_output=True,
            timeout=SURVEY_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode:
        return None
    return _parsed(done.stdout, target, folder, prefix)


def _parsed(out: bytes, target: Target, folder: SnapshotFolder, prefix: str) -> Survey | None:
    try:
        fields = out.decode("utf-8").split("\0")
    except UnicodeDecodeError:
        return None
    if fields[-1] != "" or (len(fields) - 1) % 4:
        return None
    rows = [fields[i : i + 4] for i in range(0, len(fields) - 1, 4)]
    heads = sorted(r[1] for r in rows if r[0] == "v")
    databases = [(r[1], r[2], int(r[3])) for r in rows if r[0] == "d" and r[3].isdigit()]
    found = {s.key: s for s in dump_snapshots(folder, target.dump_prefix)}
    found.update((s.key, s) for s in snapshots_in(target.live, databases))
    return Survey(
        tuple(heads),
        tuple(found[k] for k in sorted(found)),
        tuple(sorted(n for n, _, _ in databases if prefix and n.startswith(prefix))),
    )


def conninfo(params: Mapping[str, str]) -> str:
    """libpq's ``key='value' …`` form, quoted as libpq reads it."""
    return " ".join(f"{k}={_quoted(v)}" for k, v in params.items())


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _environment(password: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password  # never on the command line: ps shows it
    env["PGCLIENTENCODING"] = "UTF8"
    env.setdefault("PGAPPNAME", "branchmig")
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    return env
