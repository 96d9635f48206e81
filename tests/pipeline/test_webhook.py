"""The receiver's registry side on a real SQLite store, in process: the ASGI app through Starlette's
TestClient, the history kept with `set_champion`, and the dispatch against a loopback stand-in for
GitHub. Versions here have no register run, so the gate cannot score them: they are tagged
`manual-override` with the reason (tests/e2e/test_webhook.py scores real ones)."""

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from starlette.testclient import TestClient

from housing_mlops.config.schema import Config
from housing_mlops.pipeline import webhook
from housing_mlops.registry import store as registry
from housing_mlops.registry.webhook import sign
from tests.e2e.hooks import FakeGitHub

SECRET = "unit-test-webhook-secret-0123456789"


@pytest.fixture
def client(tmp_path: Path, cfg: Config) -> MlflowClient:
    client = MlflowClient()
    client.create_registered_model(cfg.registry.model_name)
    for _ in range(2):
        client.create_model_version(cfg.registry.model_name, (tmp_path / "no-model").as_uri())
    return client


def history(client: MlflowClient, cfg: Config) -> list[str]:
    return registry.history(client, cfg.registry.model_name)


def delivery(cfg: Config, version: str | None, alias: str = "champion", delivery_id: str = "") -> tuple[bytes, dict]:
    action = "created" if version else "deleted"
    data = {"name": cfg.registry.model_name, "alias": alias} | ({"version": version} if version else {})
    body = json.dumps({"entity": "model_version_alias", "action": action, "timestamp": "t", "data": data}).encode()
    delivery_id, stamp = delivery_id or str(uuid.uuid4()), str(int(time.time()))
    headers = {"X-MLflow-Delivery-Id": delivery_id, "X-MLflow-Timestamp": stamp}
    return body, headers | {"X-MLflow-Signature": sign(SECRET, delivery_id, stamp, body)}


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    yield fake
    fake.close()


def receiving(client: MlflowClient, cfg: Config, github: FakeGitHub) -> TestClient:
    dispatch = replace(cfg.webhook.dispatch, repository="acme/housing", api_url=github.url)
    cfg = replace(cfg, webhook=replace(cfg.webhook, dispatch=dispatch))
    return TestClient(webhook.app(webhook.Receiver(client, cfg, SECRET, "test-token")))


def test_set_champion_records_each_move_once(client: MlflowClient, cfg: Config) -> None:
    name = cfg.registry.model_name
    registry.set_champion(client, name, "1", "first")
    registry.set_champion(client, name, "1", "again")  # promoting the champion again is no new move
    registry.set_champion(client, name, "2", "better")
    assert history(client, cfg) == ["1", "2"]
    assert not registry.record_champion(client, name, "2")
    assert history(client, cfg) == ["1", "2"]


def test_an_alias_move_that_fails_puts_the_history_back(client: MlflowClient, cfg: Config) -> None:
    name = cfg.registry.model_name
    registry.set_champion(client, name, "1", "first")
    with pytest.raises(MlflowException, match="not found"):
        registry.set_champion(client, name, "7", "no such version")
    assert history(client, cfg) == ["1"]
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"


def test_the_receiver_reconciles_records_hand_moves_once_and_follows_the_pipelines(
    client: MlflowClient, cfg: Config, github: FakeGitHub
) -> None:
    name = cfg.registry.model_name
    client.set_registered_model_alias(name, "champion", "1")  # by hand, before any receiver ran
    with receiving(client, cfg, github) as http:
        deadline = time.monotonic() + 30
        while not http.get("/health").json()["reconciled"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert history(client, cfg) == ["1"]
        tags = client.get_model_version(name, "1").tags
        assert tags["promotion.verdict"] == "manual-override"
        assert tags["promotion.reason"].startswith("not scored by the gate:")
        assert "found at start" in tags["promotion.moved_by_hand"]
        assert len(github.requests) == 1  # the reconciled move is dispatched too

        # another alias is not the receiver's business
        body, headers = delivery(cfg, "2", alias="challenger")
        answer = http.post("/webhook", content=body, headers=headers)
        assert answer.status_code == 200
        assert "ignored" in answer.json()["result"]

        client.set_registered_model_alias(name, "champion", "2")
        body, headers = delivery(cfg, "2")
        answer = http.post("/webhook", content=body, headers=headers)
        assert answer.status_code == 200
        assert "moved by hand from v1 to v2" in answer.json()["result"]
        assert history(client, cfg) == ["1", "2"]
        assert github.requests[-1]["body"]["client_payload"]["version"] == "2"
        again = http.post("/webhook", content=body, headers=headers)  # MLflow's retry of the same delivery
        assert "already handled" in again.json()["result"]

        registry.set_champion(client, name, "1", "the pipeline's own move")
        answer = http.post("/webhook", content=(d := delivery(cfg, "1"))[0], headers=d[1])
        assert "already in champion_history: nothing to do" in answer.json()["result"]
        assert history(client, cfg) == ["1", "2", "1"]
        assert client.get_model_version(name, "1").tags["promotion.reason"] == "the pipeline's own move"

        gone = http.post("/webhook", content=(d := delivery(cfg, "9"))[0], headers=d[1])
        assert gone.status_code == 410
        wrong = delivery(cfg, "2")
        wrong[1]["X-MLflow-Signature"] = "v1,AAAA"
        assert http.post("/webhook", content=wrong[0], headers=wrong[1]).status_code == 401
        assert history(client, cfg) == ["1", "2", "1"]

        client.delete_registered_model_alias(name, "champion")
        answer = http.post("/webhook", content=(d := delivery(cfg, None))[0], headers=d[1])
        assert "champion_history unchanged (last champion: v1)" in answer.json()["result"]
        assert history(client, cfg) == ["1", "2", "1"]


def test_a_failed_dispatch_is_one_line_and_never_raises(cfg: Config) -> None:
    dispatch = replace(cfg.webhook.dispatch, repository="acme/housing", api_url="http://127.0.0.1:9", timeout_s=2)
    line = webhook.dispatch(dispatch, "token", {"version": "1"})
    assert line.startswith("repository_dispatch to acme/housing failed:")
    assert "\n" not in line
