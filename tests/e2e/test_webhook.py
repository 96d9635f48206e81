"""The registry webhook receiver against a real `mlflow server` (issue 19, item 2).

A copy of the session's trained store gets v2 by a forced register (the gate holds it); an `mlflow
server` on loopback sends webhooks (http and loopback allowed, as the stack sets); `make webhook`'s
receiver registers its webhook and listens; a local HTTP server stands in for GitHub's dispatch API.
The tests run in order on one store: each names the state it starts from.
"""

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from housing_mlops.registry.webhook import sign
from tests.conftest import BIN, FAST_OPTIONS, MODEL, ROOT, Store, Trained
from tests.e2e.hooks import SECRET, FakeGitHub, MlflowServer, Receiver, wait_for

pytestmark = [pytest.mark.e2e]
HOOK = "housing-mlops-champion"


@dataclass
class Stack:
    store: Store
    server: MlflowServer
    receiver: Receiver
    github: FakeGitHub
    client: MlflowClient


@pytest.fixture(scope="module")
def stack(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("webhook")
    store = trained.copy(folder / "store")
    store.mlflow_run("-P", "steps=register", hydra=f"{FAST_OPTIONS} pipeline.force=[register]")
    server = MlflowServer(store, folder)
    github = FakeGitHub()
    hydra = f"webhook.dispatch.repository=acme/housing webhook.dispatch.api_url={github.url}"
    receiver = Receiver(store, server, folder, hydra, {"GITHUB_TOKEN": "test-token"})
    try:
        server.start()
        receiver.start()
        yield Stack(store, server, receiver, github, MlflowClient(server.url))
    finally:
        receiver.stop()
        server.stop()
        github.close()


def history(client: MlflowClient) -> list[str]:
    return json.loads(client.get_registered_model(MODEL).tags.get("champion_history", "[]"))


def champion(client: MlflowClient) -> str:
    return str(client.get_model_version_by_alias(MODEL, "champion").version)


def signed(payload: dict, secret: str = SECRET, sent: float | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    delivery, stamp = str(uuid.uuid4()), str(int(time.time() if sent is None else sent))
    headers = {"X-MLflow-Delivery-Id": delivery, "X-MLflow-Timestamp": stamp, "Content-Type": "application/json"}
    return body, headers | {"X-MLflow-Signature": sign(secret, delivery, stamp, body)}


def alias_event(version: str, action: str = "created") -> dict:
    data = {"name": MODEL, "alias": "champion", "version": version}
    return {"entity": "model_version_alias", "action": action, "timestamp": "2026-12-05T00:00:00Z", "data": data}


def test_the_receiver_registers_its_signed_webhook_on_the_server(stack: Stack) -> None:
    hooks = [h for h in stack.client.list_webhooks() if h.name == HOOK]
    assert len(hooks) == 1
    assert hooks[0].url == f"{stack.receiver.url}/webhook"
    assert {str(e) for e in hooks[0].events} == {"model_version_alias.created", "model_version_alias.deleted"}
    # the server signs with the receiver's secret: its own test delivery (an example payload) passes
    result = stack.client.test_webhook(hooks[0].webhook_id)
    assert result.success, result
    assert f"webhook {HOOK}" in stack.receiver.text()
    assert champion(stack.client) == "1"
    assert history(stack.client) == ["1"]  # at start: already recorded, nothing reconciled


def test_a_champion_moved_through_the_rest_api_is_recorded_gated_and_tagged(stack: Stack) -> None:
    client = stack.client
    assert client.get_model_version(MODEL, "2").tags["promotion.verdict"] == "hold"  # the gate refused v2
    started = time.monotonic()
    client.set_registered_model_alias(MODEL, "champion", "2")  # as the UI does
    wait_for(lambda: history(client) == ["1", "2"], "the move in champion_history")
    took = time.monotonic() - started
    tags = client.get_model_version(MODEL, "2").tags
    assert tags["promotion.verdict"] == "manual-override"
    assert "does not beat champion v1" in tags["promotion.reason"]
    verdict = json.loads(tags["promotion.manual_verdict"])
    assert verdict["promote"] is False
    assert verdict["champion"] == "1"
    assert "promotion.moved_by_hand" in tags
    assert champion(client) == "2"  # the person's decision stands
    log = stack.receiver.text()
    assert "champion moved by hand from v1 to v2" in log
    assert "promotion.verdict=manual-override" in log
    dispatched = wait_for(lambda: stack.github.requests, "the repository_dispatch")
    assert dispatched[-1]["path"] == "/repos/acme/housing/dispatches"
    assert dispatched[-1]["headers"]["Authorization"] == "Bearer test-token"
    assert dispatched[-1]["body"]["event_type"] == "champion-moved"
    payload = dispatched[-1]["body"]["client_payload"]
    assert (payload["version"], payload["verdict"], payload["recorded_now"]) == ("2", "manual-override", True)
    assert took < 60  # well within MLflow's delivery timeout (MLFLOW_WEBHOOK_REQUEST_TIMEOUT, 30 s) on this sample


def test_rollback_and_a_forced_promotion_are_recorded_once(stack: Stack) -> None:
    """The pipeline's own moves write the history first: the receiver finds them recorded."""
    client = stack.client
    store = Store(stack.store.uri, stack.store.env | {"MLFLOW_TRACKING_URI": stack.server.url})
    before = len(stack.github.requests)
    store.mlflow_run("-e", "rollback")
    assert champion(client) == "1"
    wait_for(lambda: len(stack.github.requests) > before, "the rollback's delivery")
    assert history(client) == ["1"]
    assert "already in champion_history: nothing to do" in stack.receiver.text()
    assert client.get_model_version(MODEL, "1").tags.get("promotion.verdict") != "manual-override"

    store.mlflow_run("-e", "promote", "-P", "version=2", "-P", "force=true")
    wait_for(lambda: len(stack.github.requests) > before + 1, "the promotion's delivery")
    assert history(client) == ["1", "2"]
    store.mlflow_run("-e", "rollback")
    wait_for(lambda: len(stack.github.requests) > before + 2, "the second rollback's delivery")
    assert history(client) == ["1"]
    assert champion(client) == "1"


def test_bad_deliveries_are_refused_with_one_line_and_change_nothing(stack: Stack) -> None:
    client = stack.client
    # a version that existed and was deleted
    v1 = client.get_model_version(MODEL, "1")
    model_id = v1.model_id or v1.source.removeprefix("models:/")  # a logged model's source names it
    gone = client.create_model_version(MODEL, v1.source, v1.run_id, model_id=model_id).version
    client.delete_model_version(MODEL, gone)
    tags_before = {v: client.get_model_version(MODEL, v).tags for v in ("1", "2")}
    history_before, dispatches = history(client), len(stack.github.requests)

    good_body, good_headers = signed(alias_event("2"))
    cases = {
        "unsigned": (good_body, {k: v for k, v in good_headers.items() if k != "X-MLflow-Signature"}, 401),
        "wrong secret": (*signed(alias_event("2"), secret="not-the-receivers-secret-0123"), 401),
        "altered body": (good_body.replace(b'"2"', b'"1"'), good_headers, 401),
        "stale": (*signed(alias_event("2"), sent=time.time() - 3600), 401),
        "unknown event": (*signed({**alias_event("2"), "entity": "model_version"}), 400),
        "malformed": (*signed({"entity": "model_version_alias", "action": "created", "data": []}), 400),
        "deleted version": (*signed(alias_event(str(gone))), 410),
    }
    for case, (body, headers, status) in cases.items():
        got, answer = stack.receiver.post(body, headers)
        assert got == status, f"{case}: {got} {answer}"
        assert "\n" not in answer["error"], case
    log = stack.receiver.text()
    assert "unsigned delivery" in log
    assert "wrong signature" in log
    assert "stale" in log
    assert "unknown event 'model_version.created'" in log
    assert "malformed" in log
    assert f"{MODEL} v{gone} no longer exists: nothing recorded" in log
    assert history(client) == history_before
    assert {v: client.get_model_version(MODEL, v).tags for v in ("1", "2")} == tags_before
    assert champion(client) == "1"
    assert len(stack.github.requests) == dispatches


def test_deleting_the_champion_alias_keeps_the_history(stack: Stack) -> None:
    client = stack.client
    again = "v1 is champion; already in champion_history"
    seen = stack.receiver.text().count(again)
    client.delete_registered_model_alias(MODEL, "champion")
    wait_for(lambda: "the champion alias was deleted" in stack.receiver.text(), "the deletion's warning")
    assert history(stack.client) == ["1"]
    client.set_registered_model_alias(MODEL, "champion", "1")  # the same champion back: no new move
    wait_for(lambda: stack.receiver.text().count(again) > seen, "the re-set champion's delivery")
    assert history(client) == ["1"]


def test_a_move_while_the_receiver_is_down_is_reconciled_at_its_next_start(stack: Stack) -> None:
    client = stack.client
    stack.receiver.stop()
    client.set_model_version_tag(MODEL, "2", "promotion.verdict", "hold")
    client.set_registered_model_alias(MODEL, "champion", "2")  # delivered to nobody
    # MLflow retries a refused connection (MLFLOW_WEBHOOK_REQUEST_MAX_RETRIES, 3), then gives up and logs it
    wait_for(lambda: "Failed to send webhook" in stack.server.text(), "MLflow to give up the delivery")
    assert history(client) == ["1"]
    stack.receiver.start()  # `make webhook` again: updates its webhook, then reconciles
    assert history(client) == ["1", "2"]
    assert client.get_model_version(MODEL, "2").tags["promotion.verdict"] == "manual-override"
    assert "found at start" in stack.receiver.text()
    assert "webhook housing-mlops-champion" in stack.receiver.text().split("found at start")[0]
    assert len([h for h in client.list_webhooks() if h.name == HOOK]) == 1  # updated, not duplicated
    stack.receiver.stop()
    stack.receiver.start()  # nothing left to do
    assert history(client) == ["1", "2"]


def test_make_webhook_fails_in_one_line_without_secret_or_against_a_server_that_refuses(
    stack: Stack, tmp_path: Path
) -> None:
    command = [str(BIN / "python"), "-m", "steps.webhook"]
    # the Makefile's retry settings: a failing server is reported in seconds
    env = {k: v for k, v in stack.store.env.items() if k != "HOUSING_WEBHOOK_SECRET"}
    env |= {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}

    def make_webhook(server_url: str, secret: bool = True) -> str:
        extra = {"MLFLOW_TRACKING_URI": server_url} | ({"HOUSING_WEBHOOK_SECRET": SECRET} if secret else {})
        done = subprocess.run(command, env=env | extra, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, done.stdout + done.stderr
        return done.stderr.strip().splitlines()[-1]

    def make_webhook_on(server: MlflowServer) -> str:
        """`make webhook`'s last line against `server`, started for it and stopped after."""
        server.start()
        try:
            return make_webhook(server.url)
        finally:
            server.stop()

    assert make_webhook(stack.server.url, secret=False).startswith(
        "error: [webhook] environment variable HOUSING_WEBHOOK_SECRET"
    )
    # the same store served without the MLFLOW_WEBHOOK_* settings refuses an http/loopback receiver
    plain = MlflowServer(stack.store, tmp_path)
    key = stack.server.env["MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"]
    plain.env = {k: v for k, v in plain.env.items() if not k.startswith("MLFLOW_WEBHOOK_")}
    plain.env["MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"] = key
    last = make_webhook_on(plain)
    assert "refused webhook housing-mlops-champion" in last
    assert "MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https" in last
    # and served without the key that encrypted the stored secret, it cannot even list its webhooks
    keyless = MlflowServer(stack.store, tmp_path)
    keyless.env = {k: v for k, v in keyless.env.items() if k != "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"}
    last = make_webhook_on(keyless)
    assert "cannot list its webhooks" in last
    assert "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY" in last
