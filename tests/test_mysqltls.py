"""PyMySQL's preferred TLS on one shared context (``branchmig.mysqltls``): the same
handshake as PyMySQL's own context, built once per process, on branchmig's connections
and on the engines env.py creates; a URL that asks to verify keeps PyMySQL's context."""

from __future__ import annotations

import ssl
from typing import Any

import pymysql
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from branchmig import mysqltls

pytestmark = pytest.mark.mysql


def _args(url: str) -> dict[str, Any]:
    parsed = make_url(url)
    return {
        "host": parsed.host,
        "port": parsed.port or 3306,
        "user": parsed.username,
        "password": parsed.password or "",
    }


def _settings(ctx: ssl.SSLContext) -> tuple[Any, ...]:
    return (
        ctx.protocol,
        ctx.options,
        ctx.verify_mode,
        ctx.verify_flags,
        ctx.check_hostname,
        ctx.minimum_version,
        ctx.maximum_version,
    )


def test_the_shared_context_is_the_one_pymysql_would_build_less_the_store() -> None:
    own = pymysql.connections.Connection(defer_connect=True)  # preferred TLS, no option
    assert own.ssl and not own._ssl_required
    assert _settings(mysqltls.shared_context()) == _settings(own.ctx)
    assert own.ctx.verify_mode == ssl.CERT_NONE  # what makes the store useless to it


def test_connections_share_the_context_and_still_talk(mysql_server_url: str) -> None:
    first = mysqltls.connect(**_args(mysql_server_url))
    second = mysqltls.connect(**_args(mysql_server_url))
    try:
        assert first.ctx is second.ctx is mysqltls.shared_context()
        assert not first._ssl_required  # still preferred: a server without TLS answers
        with first.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        first.close()
        second.close()


def test_a_connection_asked_to_verify_keeps_pymysqls_own_context() -> None:
    ca = ssl.get_default_verify_paths().cafile or ssl.get_default_verify_paths().openssl_cafile
    conn = mysqltls.connect(ssl_ca=ca, ssl_verify_cert=True, defer_connect=True)
    assert conn.ctx is not mysqltls.shared_context()
    assert conn.ctx.verify_mode == ssl.CERT_REQUIRED and conn._ssl_required
    disabled = mysqltls.connect(ssl_disabled=True, defer_connect=True)
    assert not disabled.ssl


def test_engines_connect_through_it_once_shared(mysql_server_url: str, tmp_path: Any) -> None:
    mysqltls.share_in_engines()
    mysqltls.share_in_engines()  # once is enough; twice changes nothing
    engine = create_engine(mysql_server_url, poolclass=NullPool)
    sqlite = create_engine(f"sqlite:///{tmp_path / 'app.db'}", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
            assert conn.connection.dbapi_connection.ctx is mysqltls.shared_context()
        with sqlite.connect() as conn:  # other drivers connect as they would
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
        sqlite.dispose()
