"""Verification and parsing of MLflow's webhook deliveries (registry/webhook.py).

The signature is checked against MLflow's own signer (`mlflow.webhooks.delivery`), so a change of
scheme in MLflow fails here, not in production.
"""

import json
import time
import uuid

import pytest
from mlflow.webhooks.delivery import _generate_hmac_signature

from housing_mlops.registry.webhook import (
    ALIAS_CREATED,
    ALIAS_DELETED,
    EVENTS,
    DeliveryRejected,
    receive,
    sign,
)

SECRET = "s3cret-of-the-receiver-0123456789"
MAX_AGE = 300.0


def body(entity: str = "model_version_alias", action: str = "created", **data: str) -> bytes:
    data = data or {"name": "housing_price_model", "alias": "champion", "version": "2"}
    # MLflow's own envelope (delivery.py): entity, action, ISO timestamp, data
    return json.dumps(
        {"entity": entity, "action": action, "timestamp": "2026-12-05T22:00:00+00:00", "data": data}
    ).encode()


def headers(payload: bytes, secret: str = SECRET, sent: float | None = None, signed: bool = True) -> dict[str, str]:
    delivery, stamp = str(uuid.uuid4()), str(int(time.time() if sent is None else sent))
    out = {"x-mlflow-delivery-id": delivery, "x-mlflow-timestamp": stamp}
    if signed:
        # MLflow's signer takes text; ours signs bytes that are not UTF-8 the same way
        try:
            out["x-mlflow-signature"] = _generate_hmac_signature(secret, delivery, stamp, payload.decode())
        except UnicodeDecodeError:
            out["x-mlflow-signature"] = sign(secret, delivery, stamp, payload)
    return out


def rejected(h: dict[str, str], payload: bytes) -> DeliveryRejected:
    with pytest.raises(DeliveryRejected) as caught:
        receive(h, payload, SECRET, time.time(), MAX_AGE, EVENTS)
    message = str(caught.value)
    assert "\n" not in message
    assert message
    return caught.value


def test_our_signer_is_mlflows() -> None:
    payload = body()
    assert sign(SECRET, "id-1", "1700000000", payload) == _generate_hmac_signature(
        SECRET, "id-1", "1700000000", payload.decode()
    )


def test_a_good_signature_gives_the_alias_move() -> None:
    payload = body()
    h = headers(payload)
    delivery = receive(h, payload, SECRET, time.time(), MAX_AGE, EVENTS)
    assert delivery.event == ALIAS_CREATED
    assert (delivery.model, delivery.alias, delivery.version) == ("housing_price_model", "champion", "2")
    assert delivery.delivery_id == h["x-mlflow-delivery-id"]


def test_a_deleted_alias_has_no_version() -> None:
    payload = body(action="deleted", name="housing_price_model", alias="champion")
    delivery = receive(headers(payload), payload, SECRET, time.time(), MAX_AGE, EVENTS)
    assert (delivery.event, delivery.version) == (ALIAS_DELETED, None)


def test_an_unsigned_delivery_is_refused() -> None:
    payload = body()
    error = rejected(headers(payload, signed=False), payload)
    assert error.status == 401
    assert "unsigned" in str(error)


def test_a_delivery_signed_with_another_secret_is_refused() -> None:
    payload = body()
    error = rejected(headers(payload, secret="another-secret-0123456789"), payload)
    assert error.status == 401
    assert "wrong signature" in str(error)


def test_an_altered_body_is_refused() -> None:
    payload = body()
    h = headers(payload)
    error = rejected(h, payload.replace(b'"2"', b'"1"'))
    assert "wrong signature" in str(error)


def test_a_garbled_signature_is_refused() -> None:
    payload = body()
    h = headers(payload) | {"x-mlflow-signature": "v1,not base64 at all"}
    assert "wrong signature" in str(rejected(h, payload))


@pytest.mark.parametrize("age", [MAX_AGE + 5, -(MAX_AGE + 5)], ids=["old", "from-the-future"])
def test_a_stale_delivery_is_refused(age: float) -> None:
    payload = body()
    error = rejected(headers(payload, sent=time.time() - age), payload)
    assert error.status == 401
    assert "stale" in str(error)
    assert "webhook.max_age_s" in str(error)


def test_a_delivery_just_within_the_age_passes() -> None:
    payload = body()
    receive(headers(payload, sent=time.time() - MAX_AGE + 5), payload, SECRET, time.time(), MAX_AGE, EVENTS)


@pytest.mark.parametrize(
    ("entity", "action"), [("model_version", "created"), ("model_version_tag", "set"), ("prompt_alias", "created")]
)
def test_an_unknown_event_is_refused(entity: str, action: str) -> None:
    payload = body(entity, action)
    error = rejected(headers(payload), payload)
    assert error.status == 400
    assert f"unknown event '{entity}.{action}'" in str(error)


def test_an_event_the_config_does_not_subscribe_is_refused() -> None:
    payload = body(action="deleted", name="m", alias="champion")
    with pytest.raises(DeliveryRejected, match="unknown event"):
        receive(headers(payload), payload, SECRET, time.time(), MAX_AGE, [ALIAS_CREATED])


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        json.dumps({"entity": "model_version_alias"}).encode(),
        json.dumps({"entity": "model_version_alias", "action": "created", "data": "x"}).encode(),
        json.dumps(
            {"entity": "model_version_alias", "action": "created", "data": {"name": "m", "alias": "a"}}
        ).encode(),
        json.dumps(
            {"entity": "model_version_alias", "action": "created", "data": {"name": "m", "alias": "a", "version": 2}}
        ).encode(),
        json.dumps(
            {"entity": "model_version_alias", "action": "created", "data": {"name": "m", "alias": "a", "version": "x"}}
        ).encode(),
    ],
    ids=["text", "bytes", "list", "no-action", "data-string", "no-version", "int-version", "bad-version"],
)
def test_a_malformed_body_is_refused(payload: bytes) -> None:
    error = rejected(headers(payload), payload)
    assert error.status == 400
    assert "malformed" in str(error)


def test_a_malformed_unsigned_body_is_refused_as_unsigned() -> None:
    """Nothing of an unverified body is read: the signature is checked first."""
    assert "unsigned" in str(rejected(headers(b"not json", signed=False), b"not json"))
