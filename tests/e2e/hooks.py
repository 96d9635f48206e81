"""An `mlflow server` that sends registry webhooks to loopback, and `make webhook`'s receiver, for a test.

The server gets what the team stack sets (README, "Promoting in the UI"): http and private/loopback
targets allowed, a fixed key for the webhook secrets it stores, and a 1 s webhook-list cache (MLflow
caches the list for 60 s, so a webhook created just after an earlier event would wait that long).
"""

import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from tests.conftest import BIN, ROOT, Store
from tests.e2e.served import free_port

SECRET = "test-webhook-secret-0123456789abcdef"
WEBHOOK_ENV = {
    "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
    "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
    "MLFLOW_WEBHOOK_CACHE_TTL": "1",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


def wait_for(check: Callable[[], Any], what: str, timeout: float = 90) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(0.3)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


class Process:
    """A subprocess whose output goes to a log file; killed with its process group."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.command, self.env, self.log = command, env, log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "a") as out:
            self.process = subprocess.Popen(
                self.command, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            os.killpg(self.process.pid, 9)
            self.process.wait(timeout=30)
        self.process = None

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


class MlflowServer(Process):
    """`mlflow server` over `store` on a free loopback port, sending webhooks to loopback."""

    def __init__(self, store: Store, folder: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [str(BIN / "mlflow"), "server", "--backend-store-uri", store.uri, "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--workers", "1"]
        key = Fernet.generate_key().decode()  # the webhook secret survives a server restart
        super().__init__(
            command,
            store.env | WEBHOOK_ENV | {"MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": key},
            folder / "mlflow-server.log",
        )

    def start(self) -> None:
        super().start()
        wait_for(lambda: _answers(f"{self.url}/health") or not self.alive(), "mlflow server /health")
        assert self.alive(), f"mlflow server exited:\n{self.text()[-3000:]}"


class Receiver(Process):
    """`make webhook`'s command (`python -m steps.webhook`) against `server`, on a free loopback port."""

    def __init__(
        self, store: Store, server: MlflowServer, folder: Path, hydra: str = "", env: dict | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        options = f"webhook.port={self.port} {hydra}".strip()
        command = [str(BIN / "python"), "-m", "steps.webhook", "--hydra-options", options]
        full_env = store.env | {"MLFLOW_TRACKING_URI": server.url, "HOUSING_WEBHOOK_SECRET": SECRET} | (env or {})
        super().__init__(command, full_env, folder / "receiver.log")

    def health(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                return dict(json.loads(answer.read()))
        except (urllib.error.URLError, OSError):
            return {}

    def start(self) -> None:
        """Start, and wait until the start's reconciliation is done."""
        super().start()
        wait_for(lambda: self.health().get("reconciled") or not self.alive(), "the receiver's reconciliation")
        assert self.alive(), f"receiver exited:\n{self.text()[-3000:]}"

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(f"{self.url}/webhook", data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


class FakeGitHub:
    """A loopback HTTP server that records what is POSTed to it, as api.github.com would take a dispatch."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                received.append(
                    {"path": self.path, "headers": dict(self.headers), "body": json.loads(self.rfile.read(length))}
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
