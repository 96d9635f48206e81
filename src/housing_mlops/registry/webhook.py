"""Registry webhook deliveries: verify MLflow's HMAC signature, then parse the payload. Pure.

MLflow (3.3+, `mlflow/webhooks/delivery.py`) posts JSON and signs it Standard-Webhooks style:
headers `X-MLflow-Delivery-Id`, `X-MLflow-Timestamp` (Unix seconds) and `X-MLflow-Signature`
= `v1,<base64 HMAC-SHA256 of "<delivery id>.<timestamp>.<body>" keyed by the webhook secret>`.
The body is `{"entity", "action", "timestamp", "data"}`; for `model_version_alias.created`
`data` is `{name, alias, version}`, for `.deleted` `{name, alias}`.

Every refusal is a `DeliveryRejected` with one line and the HTTP status the receiver answers:
MLflow retries only 429 and 5xx, so a refused delivery is never sent again.
"""

import base64
import hashlib
import hmac
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from housing_mlops.errors import HousingError

SIGNATURE_HEADER = "x-mlflow-signature"
TIMESTAMP_HEADER = "x-mlflow-timestamp"
DELIVERY_HEADER = "x-mlflow-delivery-id"
SIGNATURE_VERSION = "v1"
ALIAS_CREATED = "model_version_alias.created"
ALIAS_DELETED = "model_version_alias.deleted"
EVENTS = (ALIAS_CREATED, ALIAS_DELETED)  # the events this receiver knows how to act on


class DeliveryRejected(HousingError):
    """A delivery refused before anything was changed; `status` is the HTTP answer."""

    def __init__(self, message: str, status: int) -> None:
        """`message`: one line saying what to fix; `status`: 400 (body) or 401 (signature, age)."""
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Delivery:
    """One verified alias event: which alias of which model now points at which version (None: deleted)."""

    delivery_id: str
    event: str  # "<entity>.<action>"
    model: str
    alias: str
    version: str | None


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The `X-MLflow-Signature` value MLflow sends for `body` (tests and the receiver's own check)."""
    content = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: float, max_age_s: float) -> str:
    """Check the signature and the timestamp's age; return the delivery id.

    `headers` must be case-insensitive or lower-case. A replay of a captured delivery is refused
    once it is older than `max_age_s`, and one signed with another secret or altered never passes.
    """
    names = (SIGNATURE_HEADER, TIMESTAMP_HEADER, DELIVERY_HEADER)
    signature, timestamp, delivery_id = (headers.get(h, "") for h in names)
    if not signature:
        raise DeliveryRejected(
            "unsigned delivery (no X-MLflow-Signature): create the webhook with the receiver's secret (make webhook)",
            401,
        )
    if not timestamp or not delivery_id:
        raise DeliveryRejected("delivery without X-MLflow-Timestamp or X-MLflow-Delivery-Id: not sent by MLflow", 401)
    expected = sign(secret, delivery_id, timestamp, body).encode()
    # Standard Webhooks allows several space-separated signatures; constant-time compare each
    if not any(hmac.compare_digest(expected, given.encode()) for given in signature.split()):
        raise DeliveryRejected(
            f"delivery {delivery_id}: wrong signature: the webhook's secret differs from this receiver's "
            "(re-run make webhook to set it)",
            401,
        )
    try:
        sent = int(timestamp)
    except ValueError:
        raise DeliveryRejected(f"delivery {delivery_id}: timestamp {timestamp!r} is not Unix seconds", 401) from None
    # signed, so the timestamp is MLflow's; the bound works both ways (a clock ahead is suspect too)
    if abs(now - sent) > max_age_s:
        raise DeliveryRejected(
            f"delivery {delivery_id}: stale, sent {now - sent:.0f} s ago (webhook.max_age_s {max_age_s:g}): "
            "a replay, or the clocks of the MLflow server and this receiver differ",
            401,
        )
    return delivery_id


def parse(body: bytes, delivery_id: str, events: Collection[str]) -> Delivery:
    """The alias event in `body`; refuse what is not JSON, not one of `events`, or lacks a field."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeliveryRejected(f"delivery {delivery_id}: malformed body, not JSON ({exc})", 400) from None
    if not isinstance(payload, dict):
        raise DeliveryRejected(f"delivery {delivery_id}: malformed body, not a JSON object", 400)
    entity, action = payload.get("entity"), payload.get("action")
    if not isinstance(entity, str) or not isinstance(action, str):
        raise DeliveryRejected(f"delivery {delivery_id}: malformed body, no 'entity' and 'action' strings", 400)
    event = f"{entity}.{action}"
    if event not in events or event not in EVENTS:
        known = sorted(set(events) & set(EVENTS))
        raise DeliveryRejected(
            f"delivery {delivery_id}: unknown event {event!r}: this receiver handles {', '.join(known)} "
            "(subscribe the webhook to those only)",
            400,
        )
    data: Any = payload.get("data")
    need = ("name", "alias", "version") if event == ALIAS_CREATED else ("name", "alias")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) and data[k] for k in need):
        raise DeliveryRejected(
            f"delivery {delivery_id}: malformed {event} body: 'data' needs the strings {', '.join(need)}", 400
        )
    version = data["version"] if event == ALIAS_CREATED else None
    if version is not None and not version.isdigit():
        raise DeliveryRejected(f"delivery {delivery_id}: malformed {event} body: version {version!r}", 400)
    return Delivery(delivery_id, event, data["name"], data["alias"], version)


def receive(
    headers: Mapping[str, str], body: bytes, secret: str, now: float, max_age_s: float, events: Collection[str]
) -> Delivery:
    """Verify, then parse: nothing in an unverified body is read."""
    delivery_id = verify(headers, body, secret, now, max_age_s)
    return parse(body, delivery_id, events)
