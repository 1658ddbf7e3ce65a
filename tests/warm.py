"""``branchmig`` run as a process forked from a warm one, for the tests' own command lines.

Most of a ``branchmig`` process's time in the suite is Python importing SQLAlchemy,
Alembic and click (0.25-0.4 s of each run, thousands of runs). A server per test worker
imports them once and forks a child for each command line: the child is a real process
with its own pid, working directory, environment, standard streams and exit status
(a test can kill it; a failpoint can kill it), and runs ``branchmig.entry.main`` as the
console script does. Nothing of one command outlives it into the next: each child starts
from the server, which never runs a command itself.

What it does not run is the interpreter's start and the imports, so the tests that are
about those (the console script, the hook's shell path, the import budget, the installed
wheel) start ``branchmig`` or Python themselves. The hooks git runs in the projects the
tests install them in go the same way (``warm_hooks``, ``warm_hook.py``): their shell part
as installed, their Python a child of the server. ``BRANCHMIG_TEST_COLD=1`` runs every
command line and hook as a new interpreter instead.

    python tests/warm.py SOCKET PARENT_PID     (the server; the client starts it)
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

COLD = os.environ.get("BRANCHMIG_TEST_COLD") == "1"
_FDS = 3  # stdin, stdout, stderr of the child


# -- the server ---------------------------------------------------------------------------


def _serve(path: str, parent: int) -> None:
    # What a command loads: loaded once here, shared by every child (copy on write).
    import alembic.command  # noqa: F401
    import alembic.runtime.migration  # noqa: F401
    import sqlalchemy  # noqa: F401

    import branchmig.cli  # noqa: F401
    import branchmig.dbcli  # noqa: F401
    import branchmig.entry  # noqa: F401

    for driver in ("pymysql", "psycopg", "flask", "flask_migrate"):
        with contextlib.suppress(ImportError):
            __import__(driver)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(64)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    waiting: dict[int, socket.socket] = {}
    while True:
        for _ in sel.select(timeout=0.003 if waiting else 1.0):
            conn, _ = listener.accept()
            message, fds, _, _ = socket.recv_fds(conn, 1 << 20, _FDS)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                sel.close()
                listener.close()
                conn.close()
                _child(json.loads(message), fds)
            for fd in fds:
                os.close(fd)
            conn.sendall(f"{pid}".encode())
            waiting[pid] = conn
        while waiting:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = waiting.pop(pid)
            with contextlib.suppress(OSError):  # the client gave up on it (a timeout)
                conn.sendall(f"{os.waitstatus_to_exitcode(status)}".encode())
            conn.close()
        if os.getppid() != parent:
            return  # the test worker is gone


def _child(request: dict[str, object], fds: Sequence[int]) -> None:
    """Become the command line's process; never returns."""
    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(str(request["cwd"]))
        env = request["env"]
        assert isinstance(env, dict)
        os.environ.clear()
        os.environ.update(env)
        args = request["args"]
        assert isinstance(args, list)
        sys.argv = [str(a) for a in args]
        try:
            if args[0] == "-m":  # ``python -m branchmig.hookrun ARGS``: a hook
                import runpy

                sys.argv = [str(a) for a in args[1:]]
                runpy.run_module(str(args[1]), run_name="__main__", alter_sys=True)
            elif args[0] == "--entry":  # another console script: MODULE:FUNCTION ARGV...
                import importlib

                module, _, function = str(args[1]).partition(":")
                sys.argv = [str(a) for a in args[2:]]
                sys.exit(getattr(importlib.import_module(module), function)())  # as the script
            else:
                import branchmig.entry

                branchmig.entry.main()
            code = 0
        except SystemExit as exc:
            if exc.code is None:
                code = 0
            elif isinstance(exc.code, int):
                code = exc.code
            else:
                print(exc.code, file=sys.stderr)
                code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


# -- the client ---------------------------------------------------------------------------


class _Server:
    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="bm-warm-")
        self.path = os.path.join(self.folder, "socket")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, self.path, str(os.getpid())],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the warm branchmig server did not start")
        atexit.register(self.stop)
        # The Python for the hooks of the projects the tests install them in.
        self.hook_python = os.path.join(self.folder, "python")
        client = Path(__file__).with_name("warm_hook.py")
        with open(self.hook_python, "w") as fh:
            fh.write(f'#!/bin/sh\nexec "{sys.executable}" -S -E "{client}" "{self.path}" ')
            fh.write(f'"{sys.executable}" "$@"\n')
        os.chmod(self.hook_python, 0o755)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for name in os.listdir(self.folder):
            os.unlink(os.path.join(self.folder, name))
        os.rmdir(self.folder)


_server: _Server | None = None


def _started() -> _Server:
    global _server
    if _server is None or _server.proc.poll() is not None:
        _server = _Server()
    return _server


def warm_hooks(common_dir: Path) -> None:
    """Have the hooks ``branchmig install`` just wrote in a repository (its git common
    dir) run their Python as a child of the warm server (``warm_hook.py``)."""
    if COLD:
        return
    conf = common_dir / "branchmig" / "hook.conf"
    python = _started().hook_python
    lines = [
        f"python={python}" if line.startswith("python=") else line
        for line in conf.read_text().splitlines()
    ]
    conf.write_text("".join(f"{line}\n" for line in lines))


# The console scripts a child runs; anything else is started as a new process.
_BIN = Path(sys.executable).parent
BRANCHMIG = str(_BIN / "branchmig")
ENTRIES = {str(_BIN / "alembic"): "alembic.config:main", str(_BIN / "flask"): "flask.cli:main"}


def command(
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Any command line of the tests, as ``subprocess.run(args, cwd=cwd, env=env,
    capture_output=True, text=True, timeout=timeout)`` would run it: the ``branchmig``,
    ``alembic`` and ``flask`` console scripts in a child of the warm server (and, after
    ``branchmig install``, the hooks it wrote), anything else as a new process."""
    args = [str(arg) for arg in args]
    if COLD:
        return _new_process(args, cwd=cwd, env=env, timeout=timeout)
    if args[0] in ENTRIES:  # their console script's function
        return _run(["--entry", ENTRIES[args[0]], *args], cwd=cwd, env=env, timeout=timeout)
    if args[0] == BRANCHMIG:
        proc = _run(args, cwd=cwd, env=env, timeout=timeout)
        if "install" in args and proc.returncode == 0:
            common = subprocess.run(
                ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
                cwd=cwd,
                env=dict(env),
                capture_output=True,
                text=True,
                check=True,
            )
            warm_hooks(Path(common.stdout.strip()))
        return proc
    return _new_process(args, cwd=cwd, env=env, timeout=timeout)


def _new_process(
    args: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args),
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def _run(
    args: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """``args`` (``branchmig``'s arguments, or ``--entry`` and a console script's) run in
    a child of the warm server."""
    server = _started()
    request = {"args": list(args), "cwd": str(cwd), "env": dict(env)}
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY)
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
        sock.connect(server.path)
        try:
            socket.send_fds(sock, [json.dumps(request).encode()], [null, out_w, err_w])
        finally:
            for fd in (null, out_w, err_w):
                os.close(fd)
        pid = int(sock.recv(64))
        out, err = _read_both(out_r, err_r, time.monotonic() + timeout, pid, args, timeout)
        sock.settimeout(max(1.0, timeout))
        code = int(sock.recv(64))
    return subprocess.CompletedProcess(list(args), code, out, err)


def _read_both(
    out_r: int, err_r: int, deadline: float, pid: int, args: Sequence[str], timeout: float
) -> tuple[str, str]:
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    sel = selectors.DefaultSelector()
    for fd in chunks:
        sel.register(fd, selectors.EVENT_READ)
    try:
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                    os.kill(pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired(list(args), timeout)
            for key, _ in sel.select(timeout=left):
                data = os.read(key.fd, 1 << 16)
                if data:
                    chunks[key.fd].append(data)
                else:
                    sel.unregister(key.fd)
    finally:
        sel.close()
        os.close(out_r)
        os.close(err_r)
    out, err = (b"".join(chunks[fd]).decode(errors="replace") for fd in (out_r, err_r))
    return out, err


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]))
