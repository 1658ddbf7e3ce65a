"""PyMySQL connections that share one TLS context when nothing asks them to verify.

Given no TLS option, PyMySQL (2.x) prefers TLS: for every connection it builds Python's
default context, which loads the system's store of certificate authorities (~35 ms a
connection, two fifths of a MariaDB switch's own time), then verifies nothing with it
(``CERT_NONE``: no authority was named). Here that context is built once per process,
without the store it never reads; the handshake is the same. A URL or option file that
names an authority, a certificate or verification gets PyMySQL's own context, as before.

Branchmig's own connections come from ``connect``; the engines env.py and the readers
create get theirs through ``share_in_engines`` (SQLAlchemy's ``do_connect`` event).
Neither loads PyMySQL before a connection needs it.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

__all__ = ["connect", "share_in_engines", "shared_context"]


@functools.cache
def shared_context() -> ssl.SSLContext:
    """The context PyMySQL builds for its preferred TLS, less the authorities' store."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_flags &= ~ssl.VERIFY_X509_STRICT  # as PyMySQL: MySQL's own certificates
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@functools.cache
def _connection_class() -> type:
    import pymysql.connections

    class Connection(pymysql.connections.Connection):  # type: ignore[misc]
        def _create_ssl_ctx(self, sslp: Any) -> ssl.SSLContext:
            if isinstance(sslp, dict) and not sslp:  # preferred TLS: nothing to verify
                return shared_context()
            return super()._create_ssl_ctx(sslp)  # type: ignore[no-any-return]

    return Connection


def connect(*args: Any, **kwargs: Any) -> Any:
    """``pymysql.connect(*args, **kwargs)``, its preferred TLS on the shared context."""
    return _connection_class()(*args, **kwargs)


def _on_connect(dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
    if getattr(dialect, "driver", None) != "pymysql":
        return None  # SQLAlchemy connects as it would
    return connect(*cargs, **cparams)


def share_in_engines() -> None:
    """From now on, the SQLAlchemy engines of this process that connect with PyMySQL
    connect through ``connect``."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "do_connect", _on_connect):
        event.listen(Engine, "do_connect", _on_connect)
