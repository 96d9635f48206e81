"""A warm process that forks step processes, so a step does not pay its imports.

A fresh step process spends seconds before its first line of work: Python starts, then imports
mlflow, SQLAlchemy's store, pandas, scikit-learn and, for `register`, ONNX and skops (measured:
2.6 s for `ingest` to 6.7 s for `register`, each step, every run). The pipeline starts one server
that has imported all of that once; each step's `mlflow run` entry point (`python -m steps
<name>`) hands its command line, environment, working directory and standard streams to the
server, which forks a child that runs the step module exactly as `python -m steps.<name>` would,
in the launcher's place. So every step keeps its own `mlflow.run`, its own run and its own
process, and the launcher exits as the child did: same code, or killed by the same signal.

The server listens before it imports, and imports one module at a time, serving the launchers
that came in between: a step that comes early (`ingest`, `split`) is forked from what is
imported so far and imports the rest itself, never later than a fresh process would.

The launcher and its child live and die together: the launcher forwards SIGTERM and SIGHUP, and
the server SIGKILLs a child whose launcher is gone. A launcher that finds no server, or one
that goes away before forking its step, runs the step itself. Standard library only: the
launcher must start in milliseconds.
"""

import atexit
import contextlib
import ctypes
import json
import os
import runpy
import secrets
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ADDRESS_ENV = "HOUSING_STEP_SERVER"
_STREAMS = 3  # stdin, stdout, stderr
_MAX_REQUEST = 1 << 20
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def launch(module: str, argv: Sequence[str]) -> int:
    """Run `module` as `python -m module *argv` would, in the step server when there is one.

    Returns the exit code; a child killed by a signal kills this process with the same signal.
    Runs the step itself when there is no server, or when the server closes or dies before
    forking it.
    """
    address = os.environ.get(ADDRESS_ENV)
    conn = _connect(address) if address else None
    if conn is not None:
        with conn:
            ended = _delegate(conn, module, argv)
        if ended is not None:
            return _end_as(module, ended)
    # no server, or one that closed or died before forking: the step has not begun
    sys.argv = [module, *argv]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0


def _delegate(conn: socket.socket, module: str, argv: Sequence[str]) -> str | None:
    """Hand the step to the server; its status line ("" if the server died), or None if it never forked it."""
    request = {"module": module, "argv": [module, *argv], "cwd": os.getcwd(), "env": dict(os.environ)}
    try:
        socket.send_fds(conn, [json.dumps(request).encode()], list(range(_STREAMS)))
        reader = conn.makefile("r")
        started = reader.readline()
    except ConnectionResetError:  # closed with this launcher still in its backlog
        return None
    if not started:
        return None
    pid = int(json.loads(started)["pid"])
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: os.kill(pid, signum))
    # Ctrl-C reaches the child itself (same process group): forwarding it would send it twice
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return reader.readline()
    except ConnectionResetError:
        return ""


def _end_as(module: str, ended: str) -> int:
    """Exit as the forked step did: its code, or its signal."""
    if not ended:
        sys.stderr.write(f"error: the step server died while running {module}; run the pipeline again\n")
        return 1
    code = os.waitstatus_to_exitcode(int(json.loads(ended)["status"]))
    if code < 0:
        if -code != signal.SIGKILL:  # the one signal that has no handler to reset
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


def _connect(address: str) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect("\0" + address)
    except (ConnectionRefusedError, FileNotFoundError):
        conn.close()
        return None
    return conn


def serve(address: str, preload: Sequence[str], control: int) -> None:
    """Fork one child per launcher on the abstract Unix socket `address`, importing `preload` meanwhile.

    Each module of `preload` is imported when no launcher is waiting; "ready" goes to stdout
    once they all are. Stops accepting when `control` reaches end of file, and exits when its
    last step has; SIGTERM makes it exit at once if no step is running. Accepts launchers of
    this user only.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the steps; the pipeline ends this
    sessions: dict[int, socket.socket] = {}
    # nothing to clean up: do not make the pipeline wait for the rest of the imports
    signal.signal(signal.SIGTERM, lambda *_: None if sessions else os._exit(0))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0" + address)
    listener.listen()
    # a child's end wakes the loop at once (SIGCHLD writes to `woken`): its launcher waits on it
    woken, wake = os.pipe()
    os.set_blocking(wake, False)
    signal.set_wakeup_fd(wake)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    pending = list(preload)
    open_for_steps = True
    while open_for_steps or sessions:
        watched: list[socket.socket | int] = [woken, *sessions.values()]
        if open_for_steps:
            watched += [listener, control]
        importing = open_for_steps and bool(pending)
        ready, _, _ = select.select(watched, [], [], 0 if importing else None)
        _reap(sessions)
        if importing and not ready:
            _preload(pending.pop(0), sessions, done=not pending)
        for ready_one in ready:
            if ready_one == woken:
                os.read(woken, 4096)
            elif ready_one is listener:
                _accept(listener, sessions, (control, woken, wake))
            elif ready_one == control:
                if not os.read(control, 4096):  # the pipeline is done (or gone): no new steps
                    open_for_steps = False
                    listener.close()
            else:
                _check_launcher(sessions, ready_one)


def _preload(name: str, sessions: dict[int, socket.socket], done: bool) -> None:
    # a step that ends meanwhile reports it now, not after the import: its launcher is waiting
    previous = signal.signal(signal.SIGCHLD, lambda *_: _reap(sessions))
    try:
        __import__(name)
    finally:
        signal.signal(signal.SIGCHLD, previous)
    if name.startswith("steps."):  # imported here, then run as __main__, makes runpy warn: keep its imports
        sys.modules.pop(name, None)
    if done:
        sys.stdout.write("ready\n")
        sys.stdout.flush()


def _check_launcher(sessions: dict[int, socket.socket], conn: socket.socket | int) -> None:
    """A session socket turned readable: its launcher closed it, so its step goes too."""
    pid = next((p for p, s in sessions.items() if s is conn), None)
    if pid is None:
        return
    try:
        gone = not sessions[pid].recv(1)
    except ConnectionResetError:  # it died with our pid line unread
        gone = True
    if gone:
        os.kill(pid, signal.SIGKILL)
        _reap(sessions, block=pid)


def _reap(sessions: dict[int, socket.socket], block: int | None = None) -> None:
    for pid in list(sessions):
        try:
            done, status = os.waitpid(pid, 0 if pid == block else os.WNOHANG)
        except ChildProcessError:  # reaped by a SIGCHLD handler that ran inside this call
            continue
        if done:
            conn = sessions.pop(pid)
            with contextlib.suppress(OSError):  # the launcher may be gone already
                conn.sendall(json.dumps({"status": status}).encode() + b"\n")
            conn.close()


def _accept(listener: socket.socket, sessions: dict[int, socket.socket], own_fds: tuple[int, ...]) -> None:
    conn, _ = listener.accept()
    _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    if uid != os.getuid():
        conn.close()
        return
    message, fds, _flags, _addr = socket.recv_fds(conn, _MAX_REQUEST, _STREAMS)
    if len(fds) != _STREAMS:
        for fd in fds:
            os.close(fd)
        conn.close()
        return
    server = os.getpid()
    pid = os.fork()
    if pid == 0:
        # the step gets its own signal handling before the server's pipes it would write to go
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        for other in (listener, *sessions.values()):
            other.close()
        conn.close()
        for fd in own_fds:
            os.close(fd)
        sessions.clear()
        _become(json.loads(message), fds, server)  # never returns: the child exits as the step does
    for fd in fds:
        os.close(fd)
    sessions[pid] = conn
    with contextlib.suppress(OSError):  # a launcher gone already: _check_launcher kills its step
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")


def _become(request: dict[str, object], fds: list[int], server: int) -> None:
    """Turn this fork into the launcher's `python -m module`: its streams, cwd, env and argv."""
    # a child outliving a dead server would run on with no one to report its end to
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != server:  # it died before the line above
        os._exit(1)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    env = request["env"]
    assert isinstance(env, dict)
    os.environ.clear()
    os.environ.update(env)
    cwd = request["cwd"]
    assert isinstance(cwd, str)
    os.chdir(cwd)
    # the streams now point elsewhere: buffer them as Python would have at start-up
    interactive = os.isatty(1)
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    sys.stdout.reconfigure(line_buffering=interactive, write_through=unbuffered)  # type: ignore[union-attr]
    argv = request["argv"]
    assert isinstance(argv, list)
    sys.argv = argv
    os._exit(_run_as_main(str(request["module"])))


def _run_as_main(module: str) -> int:
    """Run `module` and end as the interpreter would, short of C-level exit handlers.

    Those are the reason for `os._exit`: a library's static destructor may join a thread that
    lives only in the server (onnxruntime's does: the child hung in `exit()`). So, as
    `multiprocessing` does in its forked children: join Python threads, run the atexit
    handlers (which a fresh `python -m` runs too), flush.
    """
    interrupted = False
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        code, interrupted = 1, True
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    if interrupted:  # as Python ends on an uncaught KeyboardInterrupt: by SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return code


def _exit_code(code: object) -> int:
    """SystemExit's argument as the interpreter turns it into an exit code."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    sys.stderr.write(f"{code}\n")
    return 1


@dataclass
class StepServer:
    """A step server for the launchers this process starts, once `start` is called, until `close`.

    Started on demand: a pipeline whose steps are all cached never pays its imports. Use it
    with `contextlib.closing`.
    """

    root: Path
    preload: Sequence[str]
    _server: "subprocess.Popen[bytes] | None" = field(default=None, init=False)
    _previous: str | None = field(default=None, init=False)

    def start(self) -> None:
        """Start the server; launchers use it from the moment it listens, while it imports."""
        if self._server is not None:
            return
        address = f"housing-mlops-steps-{os.getpid()}-{secrets.token_hex(8)}"
        self._server = subprocess.Popen(
            [sys.executable, "-m", __name__, address, *self.preload],
            cwd=self.root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._previous = os.environ.get(ADDRESS_ENV)
        os.environ[ADDRESS_ENV] = address

    def ready(self, timeout_s: float) -> bool:
        """Whether the server has imported all of `preload`, waiting at most `timeout_s`."""
        if self._server is None or self._server.stdout is None:
            return False
        listening, _, _ = select.select([self._server.stdout], [], [], timeout_s)
        return bool(listening)

    def close(self) -> None:
        """Stop accepting steps; wait for those still running (an interrupted pipeline's)."""
        server, self._server = self._server, None
        if server is None:
            return
        if self._previous is None:
            os.environ.pop(ADDRESS_ENV, None)
        else:
            os.environ[ADDRESS_ENV] = self._previous
        assert server.stdin is not None
        assert server.stdout is not None
        server.stdin.close()
        server.terminate()  # exits at once unless steps are running: then, after them
        server.wait()
        server.stdout.close()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2:], sys.stdin.fileno())
    # every step has ended and nothing is left to clean up: skip the interpreter's teardown of the
    # preloaded libraries, which the pipeline would wait for (1.3-1.4 s, measured)
    os._exit(0)
