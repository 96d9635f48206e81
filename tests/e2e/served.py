"""What `make serve` runs (`python -m steps.serve`), started on a free loopback port for a test;
the make targets and the second registered version the serving tests move `champion` with."""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import BIN, FAST_OPTIONS, ROOT, Store


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(store: Store, hydra: str = "", env: dict[str, str] | None = None, log: Path | None = None) -> Iterator[str]:
    """`make serve`'s command for models:/...@champion of `store` on a free loopback port; its URL.

    `log`: a file that gets the server's stdout and stderr (its lines), else they are dropped.
    """
    port = free_port()
    command = [str(BIN / "python"), "-m", "steps.serve", "--host", "127.0.0.1", "--port", str(port)]
    out = open(log, "w") if log is not None else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [*command, "--hydra-options", hydra],
        env={**store.env, **(env or {})},
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{url}/ping", timeout=1)
                break
            except OSError:
                assert process.poll() is None, "steps.serve exited"
                time.sleep(0.5)
        else:
            pytest.fail("steps.serve did not answer /ping within 90 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        if log is not None:
            out.close()


def make(store: Store, *args: str) -> subprocess.CompletedProcess:
    """`make <args>` of the project against `store` (its venv, no reinstall); fail with its output."""
    venv = Path(sys.prefix)
    cmd = ["make", "-C", str(ROOT), f"VENV={venv}", "-o", f"{venv}/.installed", *args]
    done = subprocess.run(cmd, env=store.env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"make {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def register_again(store: Store) -> None:
    """A second version of the trained store's model: `register` forced (the gate holds it: v1 stays champion)."""
    store.mlflow_run("-P", "steps=register", hydra=f"{FAST_OPTIONS} pipeline.force=[register]")


def post(url: str, body: bytes) -> tuple[int, dict]:
    """POST /invocations: (status, JSON answer)."""
    status, answer, _ = post_with_headers(url, body)
    return status, answer


def post_with_headers(url: str, body: bytes) -> tuple[int, dict, dict[str, str]]:
    """POST /invocations: (status, JSON answer, headers by lower-case name)."""
    request = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), {k.lower(): v for k, v in exc.headers.items()}


def frame_body(rows: pd.DataFrame) -> bytes:
    return json.dumps({"dataframe_split": rows.to_dict(orient="split")}).encode()
