"""The step server: a launcher's step runs in a fork of a warm process, and ends as it would alone."""

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from housing_mlops.pipeline.orchestrator import step_imports
from housing_mlops.pipeline.step_server import ADDRESS_ENV, StepServer
from tests.conftest import ROOT

# a stdlib module no fresh interpreter imports on its own: in sys.modules only where it was preloaded
WARM = "email.mime.text"
PROBE = f"""
import os, signal, sys, time
from pathlib import Path
print("argv", sys.argv[1:], "cwd", os.getcwd(), "env", os.environ.get("PROBE_VALUE"), flush=True)
print("warm", {WARM!r} in sys.modules, "server", os.getpid() != int(os.environ["LAUNCHER_PID"]), flush=True)
sys.stderr.write("to stderr\\n")
action = sys.argv[1]
if action == "exit":
    sys.exit(int(sys.argv[2]))
if action == "raise":
    raise RuntimeError("boom in the step")
if action == "die":
    os.kill(os.getpid(), signal.SIGKILL)
if action in ("sleep", "term"):
    if action == "term":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))
    Path("pid").write_text(str(os.getpid()))
    time.sleep(60)
"""
LAUNCHER = (
    "import os, sys; os.environ['LAUNCHER_PID'] = str(os.getpid()); "
    "from housing_mlops.pipeline.step_server import launch; open('launching', 'w').close(); "
    "sys.exit(launch('probe', sys.argv[1:]))"
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "probe.py").write_text(PROBE)
    return tmp_path


@pytest.fixture
def server(project: Path) -> StepServer:
    with contextlib.closing(StepServer(project, [WARM])) as started:
        started.start()
        assert started.ready(60)
        yield started


def _launch(project: Path, *args: str, wait: bool = True) -> subprocess.Popen[str]:
    env = {**os.environ, "PROBE_VALUE": "from-the-launcher"}
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, *args],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if wait:
        launcher.wait(timeout=60)
    return launcher


def _wait_for(path: Path) -> int:
    """The pid a step writes to `path`."""
    _wait_for_file(path, nonempty=True)
    return int(path.read_text())


def _wait_for_file(path: Path, nonempty: bool = False) -> None:
    deadline = time.monotonic() + 60
    while not path.exists() or (nonempty and not path.read_text()):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_the_step_runs_warm_in_the_server_with_the_launchers_argv_cwd_env_and_streams(
    server: StepServer, project: Path
) -> None:
    launcher = _launch(project, "exit", "3")
    out, err = launcher.communicate()
    assert launcher.returncode == 3
    assert f"argv ['exit', '3'] cwd {project} env from-the-launcher" in out
    assert "warm True server True" in out
    assert err == "to stderr\n"


def test_without_a_server_the_launcher_runs_the_step_itself(project: Path) -> None:
    os.environ.pop(ADDRESS_ENV, None)
    launcher = _launch(project, "exit", "4")
    out, _ = launcher.communicate()
    assert launcher.returncode == 4
    assert "env from-the-launcher" in out
    assert "warm False server False" in out


def _gated(project: Path, name: str) -> str:
    """A module whose import says it began (file `<name>.began`) and then waits for file `<name>.go`."""
    (project / f"{name}.py").write_text(
        "import time; from pathlib import Path\n"
        f"Path('{name}.began').touch()\n"
        f"while not Path('{name}.go').exists(): time.sleep(0.02)\n"
    )
    return name


def _launch_while_importing(project: Path, gate: str) -> subprocess.Popen[str]:
    """A launcher that connects while the server is inside `gate`'s import (it listens by then)."""
    _wait_for_file(project / f"{gate}.began")
    launcher = _launch(project, "exit", "0", wait=False)
    _wait_for_file(project / "launching")
    time.sleep(1)  # from that file to its connect() is a few lines of Python
    return launcher


def test_a_launcher_is_served_between_two_imports_and_closing_skips_the_rest(project: Path) -> None:
    server = StepServer(project, [WARM, _gated(project, "first"), _gated(project, "never")])
    server.start()
    launcher = _launch_while_importing(project, "first")
    (project / "first.go").touch()
    out, _ = launcher.communicate(timeout=30)
    assert launcher.returncode == 0
    assert "warm True server True" in out  # forked after `first`, while `never` is imported
    assert not server.ready(0)
    started = time.monotonic()
    server.close()  # no step is running: the server does not finish `never`
    assert time.monotonic() - started < 10
    assert ADDRESS_ENV not in os.environ


def test_a_server_gone_before_forking_leaves_the_step_to_its_launcher(project: Path) -> None:
    with contextlib.closing(StepServer(project, [_gated(project, "first")])) as server:
        server.start()
        launcher = _launch_while_importing(project, "first")
        process = server._server
        assert process is not None
        process.kill()
        out, err = launcher.communicate(timeout=30)
    assert launcher.returncode == 0, err
    assert "warm False server False" in out


def test_an_exception_in_the_step_prints_its_traceback_and_exits_1(server: StepServer, project: Path) -> None:
    launcher = _launch(project, "raise")
    _, err = launcher.communicate()
    assert launcher.returncode == 1
    assert "RuntimeError: boom in the step" in err


def test_a_step_killed_by_a_signal_kills_its_launcher_with_it(server: StepServer, project: Path) -> None:
    launcher = _launch(project, "die")
    launcher.communicate()
    assert launcher.returncode == -signal.SIGKILL


def test_sigterm_to_the_launcher_reaches_the_step(server: StepServer, project: Path) -> None:
    launcher = _launch(project, "term", wait=False)
    _wait_for(project / "pid")
    launcher.send_signal(signal.SIGTERM)
    launcher.communicate(timeout=30)
    assert launcher.returncode == 7


def test_a_step_without_a_sigterm_handler_dies_of_sigterm_as_python_would(server: StepServer, project: Path) -> None:
    launcher = _launch(project, "sleep", wait=False)
    _wait_for(project / "pid")
    launcher.send_signal(signal.SIGTERM)
    launcher.communicate(timeout=30)
    assert launcher.returncode == -signal.SIGTERM  # not the server's own SIGTERM handler


def test_a_launcher_killed_takes_its_step_with_it_and_the_server_serves_on(server: StepServer, project: Path) -> None:
    launcher = _launch(project, "sleep", wait=False)
    step = _wait_for(project / "pid")
    launcher.kill()
    launcher.communicate(timeout=30)
    assert _gone(step)
    again = _launch(project, "exit", "0")
    out, _ = again.communicate()
    assert again.returncode == 0
    assert "server True" in out


def test_a_launcher_dead_before_reading_its_pid_takes_its_step_with_it(server: StepServer, project: Path) -> None:
    (project / "env").mkdir()
    request = {"module": "probe", "argv": ["probe", "sleep"], "cwd": str(project / "env"), "env": {"LAUNCHER_PID": "0"}}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect("\0" + os.environ[ADDRESS_ENV])
        with open(os.devnull, "r+b") as null:
            socket.send_fds(conn, [json.dumps(request).encode()], [null.fileno()] * 3)
        step = _wait_for(project / "env" / "pid")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
    assert _gone(step)
    again = _launch(project, "exit", "0")
    out, _ = again.communicate()
    assert again.returncode == 0
    assert "server True" in out


def test_closing_waits_for_a_running_step_then_a_step_server_death_kills_the_step(project: Path) -> None:
    server = StepServer(project, [WARM])
    server.start()
    assert server.ready(60)
    launcher = _launch(project, "sleep", wait=False)
    step = _wait_for(project / "pid")
    process = server._server
    assert process is not None
    process.kill()  # the server dies under a running step: the step dies too, the launcher says so
    _, err = launcher.communicate(timeout=30)
    assert launcher.returncode == 1
    assert "the step server died while running probe" in err
    assert _gone(step)
    server.close()


def test_the_pipelines_server_preloads_only_modules_that_import() -> None:
    # a name that no longer imports would kill the server at start and leave every step cold
    code = "import sys; [__import__(name) for name in sys.argv[1:]]"
    subprocess.run([sys.executable, "-c", code, *step_imports()], check=True, cwd=ROOT, capture_output=True)
