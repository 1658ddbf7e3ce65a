"""The Python a test project's hooks run (``python=`` of hook.conf, through a two-line
shell script ``warm`` writes): ``-m branchmig.hookrun ARGS`` handed, with this process's
standard streams, working directory and environment, to a child of the warm server
(``warm``), whose exit status, or the signal that ended it, becomes this one's.

Run with ``-S -E`` and the standard library's smallest modules: ~10 ms instead of the
~0.35 s of a hook's interpreter loading branchmig, Alembic and SQLAlchemy. Where the
server is gone, or ``BRANCHMIG_TEST_COLD=1``, it becomes the real interpreter.

    python -S -E warm_hook.py SOCKET PYTHON -m branchmig.hookrun HOOK ARGS...
"""

import contextlib
import json
import os
import signal
import socket
import sys


def main(sock_path: str, python: str, args: list[str]) -> None:
    if os.environ.get("BRANCHMIG_TEST_COLD") == "1":
        os.execv(python, [python, *args])
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(sock_path)
    except OSError:
        os.execv(python, [python, *args])
    request = {"args": args, "cwd": os.getcwd(), "env": dict(os.environ)}
    socket.send_fds(sock, [json.dumps(request).encode()], [0, 1, 2])
    child = int(sock.recv(64))

    # A Ctrl-C or a kill that git's process group gets reaches the hook's Python (SIGKILL
    # cannot be passed on: a test that kills the hook's process runs it cold).
    def pass_on(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            os.kill(child, signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, pass_on)
    code = int(sock.recv(64))
    if code < 0:  # ended by a signal: end by the same one
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
