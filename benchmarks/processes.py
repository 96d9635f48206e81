"""Child processes the bench times: each in a process group of its own, stopped whole."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def run_logged(command: list[str], log: Path, cwd: Path, env: dict[str, str] | None) -> int:
    """Run `command` with its output in `log`; its exit code.

    The command gets a process group of its own, killed whole if the bench stops early: `mlflow run`
    leaves its step processes running when only it is killed.
    """
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            return process.wait()
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def unwind_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so `run_logged` gets to stop its child's process group."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def stop(server: subprocess.Popen[bytes]) -> None:
    """Stop a server started in its own session: SIGTERM to its group, SIGKILL after 15 s."""
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


@contextmanager
def burners(count: int) -> Iterator[None]:
    """`count` processes spinning on a core each, for as long as the block runs: a busy machine."""
    spinning = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for process in spinning:
            process.kill()
            process.wait()
