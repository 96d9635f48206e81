"""`make webhook`: the registry webhook receiver, an ASGI app on uvicorn.

The MLflow server posts every alias move to it (open-source webhooks, MLflow 3.3+). A verified
move of `champion` that the alias history does not hold yet was made outside the pipeline (the
UI, the REST API): the receiver scores the new champion through the gate `promote` uses, against
the champion before it, tags the version with the verdict (`manual-override` when the gate would
have refused: the person's decision stands, and is recorded), appends it to the history so
`make rollback` knows it, and may send a GitHub `repository_dispatch`. The pipeline's own moves
(`set_champion`, `rollback`) write the history before the alias moves, so they arrive already
recorded and are not scored again. At start the receiver reconciles: a champion the history does
not end with (moved while the receiver was down) is handled as if its delivery had arrived.
"""

import asyncio
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from mlflow.entities.webhook import Webhook, WebhookEvent, WebhookEventStr
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from housing_mlops.config.schema import Config
from housing_mlops.config.webhook import DispatchConfig, WebhookConfig
from housing_mlops.errors import HousingError
from housing_mlops.pipeline import champion
from housing_mlops.registry import store as registry
from housing_mlops.registry import webhook
from housing_mlops.registry.webhook import ALIAS_CREATED, Delivery, DeliveryRejected

log = logging.getLogger(__name__)

VERDICT_TAG, REASON_TAG = "promotion.verdict", "promotion.reason"
MANUAL_OVERRIDE = "manual-override"  # moved by hand although the gate would have refused
MOVED_TAG = "promotion.moved_by_hand"  # when the receiver learnt of the move, and how (delivery or start)
SEEN_DELIVERIES = 1000  # delivery ids remembered: MLflow retries a delivery it got no answer to


@dataclass(frozen=True)
class Outcome:
    """What the receiver did about one alias event: whether it changed the registry, in one line."""

    changed: bool
    message: str


def _exists(client: MlflowClient, name: str, version: str) -> bool:
    try:
        client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return False
        raise
    return True


def on_champion(client: MlflowClient, cfg: Config, version: str, how: str) -> Outcome:
    """`champion` now points at `version`: gate-check, tag and record it unless the history has it.

    Tags first, history last: a receiver that dies in between leaves the move unrecorded, and the
    retried delivery (or the next start) does it again, idempotently.
    """
    name = cfg.registry.model_name
    if not _exists(client, name, version):
        raise DeliveryRejected(f"{name} v{version} no longer exists: nothing recorded", 410)
    past = registry.history(client, name)
    if past and past[-1] == version:
        return Outcome(False, f"{name} v{version} is champion; already in {registry.HISTORY_TAG}: nothing to do")
    previous = past[-1] if past else None
    started = time.perf_counter()
    try:
        verdict = champion.judge(client, cfg, version, previous)
    except HousingError as exc:  # e.g. a version registered by hand, without a sealed test set
        label, reason, whole = MANUAL_OVERRIDE, f"not scored by the gate: {exc}", None
    else:
        label = "promote" if verdict.promote else MANUAL_OVERRIDE
        reason, whole = verdict.reason, json.dumps(verdict.to_dict())
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    tags = {VERDICT_TAG: label, REASON_TAG: reason, MOVED_TAG: f"{stamp} ({how})"}
    if whole is not None:
        tags[champion.MANUAL_VERDICT_TAG] = whole
    registry.tag_version(client, name, version, tags)
    registry.record_champion(client, name, version)
    since = f"v{previous}" if previous else "no champion"
    return Outcome(
        True,
        f"{name}: champion moved by hand from {since} to v{version} ({how}): recorded in {registry.HISTORY_TAG}; "
        f"{VERDICT_TAG}={label} (gate {time.perf_counter() - started:.1f} s): {reason}",
    )


def on_champion_deleted(client: MlflowClient, cfg: Config) -> Outcome:
    """`champion` was removed. Nothing resolves @champion until it is set again; the history is kept.

    The history lists versions that were champion; removing the alias makes none, so nothing is
    appended. Its last entry stays the version that was champion, so setting the alias again (UI,
    `make promote`) is scored against that version, and `make rollback` needs a champion again first.
    """
    name = cfg.registry.model_name
    current = registry.version_by_alias(client, name, registry.CHAMPION)
    if current is not None:
        return Outcome(False, f"{name}: champion alias deleted, then set again (v{current.version}): nothing to do")
    past = registry.history(client, name)
    last = f"v{past[-1]}" if past else "none"
    log.warning(
        f"{name}: the champion alias was deleted: nothing resolves models:/{name}@champion (serve, predict) until "
        f"it is set again; {registry.HISTORY_TAG} unchanged (last champion: {last})"
    )
    return Outcome(False, f"{name}: champion alias deleted; {registry.HISTORY_TAG} unchanged (last champion: {last})")


def reconcile(client: MlflowClient, cfg: Config) -> Outcome:
    """At start: a champion the history does not end with moved while no receiver listened."""
    name = cfg.registry.model_name
    try:
        current = registry.version_by_alias(client, name, registry.CHAMPION)
    except MlflowException as exc:
        raise HousingError(f"cannot read {name}'s champion: {str(exc).splitlines()[0]}") from exc
    if current is None:
        return Outcome(False, f"{name} has no champion: nothing to reconcile")
    return on_champion(client, cfg, str(current.version), "found at start")


def dispatch(cfg: DispatchConfig, token: str, payload: dict[str, Any]) -> str:
    """POST a GitHub `repository_dispatch` (the deploy workflow's trigger); return one line, never raise."""
    url = f"{cfg.api_url.rstrip('/')}/repos/{cfg.repository}/dispatches"
    body = json.dumps({"event_type": cfg.event_type, "client_payload": payload}).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": "2022-11-28",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=cfg.timeout_s) as answer:
            return f"repository_dispatch {cfg.event_type} sent to {cfg.repository} (HTTP {answer.status})"
    except urllib.error.HTTPError as exc:
        return f"repository_dispatch to {cfg.repository} failed: HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError) as exc:
        return f"repository_dispatch to {cfg.repository} failed: {exc}"


class Receiver:
    """Verifies each delivery and handles one at a time (deliveries and the start's reconciliation)."""

    def __init__(self, client: MlflowClient, cfg: Config, secret: str, token: str | None) -> None:
        """`secret`: the webhook's HMAC secret; `token`: GitHub's, when dispatch is on."""
        self.client, self.cfg, self.secret, self.token = client, cfg, secret, token
        self.lock = threading.Lock()
        self.seen: OrderedDict[str, str] = OrderedDict()
        self.reconciled = threading.Event()
        self.last = ""

    def deliver(self, headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        """(HTTP status, one line) for one delivery. 4xx: refused, nothing changed; 503: MLflow retries."""
        hook = self.cfg.webhook
        try:
            delivery = webhook.receive(headers, body, self.secret, time.time(), hook.max_age_s, hook.events)
        except DeliveryRejected as exc:
            log.warning(f"rejected: {exc}")
            return exc.status, str(exc)
        with self.lock:
            if delivery.delivery_id in self.seen:
                return 200, f"delivery {delivery.delivery_id} already handled: {self.seen[delivery.delivery_id]}"
            try:
                outcome = self._handle(delivery)
            except DeliveryRejected as exc:
                log.warning(f"rejected: delivery {delivery.delivery_id}: {exc}")
                return exc.status, str(exc)
            except (MlflowException, OSError) as exc:  # the tracking server failed: let MLflow retry
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                line = f"delivery {delivery.delivery_id}: {first}"
                log.error(line)
                return 503, line
            self.seen[delivery.delivery_id] = outcome.message
            while len(self.seen) > SEEN_DELIVERIES:
                self.seen.popitem(last=False)
            self.last = outcome.message
        log.info(outcome.message)
        return 200, outcome.message

    def _handle(self, delivery: Delivery) -> Outcome:
        name = self.cfg.registry.model_name
        if delivery.model != name or delivery.alias != registry.CHAMPION:
            return Outcome(False, f"{delivery.event} {delivery.model}@{delivery.alias}: not {name}@champion, ignored")
        if delivery.event != ALIAS_CREATED or delivery.version is None:
            return on_champion_deleted(self.client, self.cfg)
        outcome = on_champion(self.client, self.cfg, delivery.version, f"delivery {delivery.delivery_id}")
        # every move (the pipeline's too) is one the deploy workflow follows
        self._dispatch(delivery.version, outcome)
        return outcome

    def _dispatch(self, version: str, outcome: Outcome) -> None:
        if self.token is None:
            return
        tags = self.client.get_model_version(self.cfg.registry.model_name, version).tags
        payload = {
            "model": self.cfg.registry.model_name,
            "version": version,
            "verdict": tags.get(VERDICT_TAG, ""),
            "recorded_now": outcome.changed,
        }
        line = dispatch(self.cfg.webhook.dispatch, self.token, payload)
        (log.info if "failed" not in line else log.warning)(line)

    def reconcile(self) -> None:
        """The start's reconciliation, under the delivery lock; a failure is one line, never fatal."""
        with self.lock:
            try:
                outcome = reconcile(self.client, self.cfg)
                if outcome.changed:
                    current = registry.version_by_alias(self.client, self.cfg.registry.model_name, registry.CHAMPION)
                    if current is not None:
                        self._dispatch(str(current.version), outcome)
                self.last = outcome.message
                log.info(f"reconciled: {outcome.message}")
            except (HousingError, MlflowException, OSError) as exc:
                self.last = f"reconciliation failed: {str(exc).splitlines()[0]}"
                log.error(self.last)
            finally:
                self.reconciled.set()


def app(receiver: Receiver) -> Starlette:
    """POST /webhook (MLflow's deliveries) and GET /health; reconciliation runs once, in the background, at start."""

    async def deliveries(request: Request) -> JSONResponse:
        body = await request.body()
        status, line = await run_in_threadpool(receiver.deliver, request.headers, body)
        return JSONResponse({"result" if status < 400 else "error": line}, status_code=status)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "reconciled": receiver.reconciled.is_set(), "last": receiver.last})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # in the background: deliveries are accepted (and wait on the lock) while it scores
        task = asyncio.get_running_loop().run_in_executor(None, receiver.reconcile)
        yield
        await task

    return Starlette(
        routes=[Route("/webhook", deliveries, methods=["POST"]), Route("/health", health, methods=["GET"])],
        lifespan=lifespan,
    )


def _webhooks(client: MlflowClient) -> list[Webhook]:
    found: list[Webhook] = []
    token: str | None = None
    while True:
        page = client.list_webhooks(max_results=100, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return found


def ensure_webhook(client: MlflowClient, cfg: WebhookConfig, secret: str) -> str:
    """Create the MLflow webhook `cfg.name` pointing at the receiver, or update the one of that name; one line."""
    uri = str(client.tracking_uri)
    if not uri.startswith(("http://", "https://")):
        raise HousingError(
            f"MLFLOW_TRACKING_URI={uri}: webhooks are sent by an `mlflow server`; point MLFLOW_TRACKING_URI "
            "at it (make ui serves one on http://127.0.0.1:5000)"
        )
    url = cfg.target()
    events: list[WebhookEventStr | WebhookEvent] = [WebhookEvent(*event.split(".", 1)) for event in cfg.events]
    description = "housing-mlops: records, gate-checks and tags every champion move (make webhook)"
    try:
        listed = _webhooks(client)
    except MlflowException as exc:  # listing decrypts every stored secret
        raise HousingError(
            f"the MLflow server at {uri} cannot list its webhooks ({str(exc).splitlines()[0][:200]}): a server "
            "restarted without MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY cannot read the secrets it stored; "
            "give it a fixed key (README: Promoting in the UI)"
        ) from exc
    try:
        existing = [w for w in listed if w.name == cfg.name]
        if existing:
            hook = client.update_webhook(existing[0].webhook_id, url=url, events=events, secret=secret, status="ACTIVE")
            done = "updated"
        else:
            hook = client.create_webhook(cfg.name, url, events, description=description, secret=secret)
            done = "created"
    except MlflowException as exc:
        first = str(exc).splitlines()[0]
        hint = ""
        if "scheme" in first or "non-public" in first or "private" in first:
            hint = (
                " (start the MLflow server with MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https and "
                "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true for a receiver on loopback or a private network)"
            )
        raise HousingError(f"the MLflow server at {uri} refused webhook {cfg.name} -> {url}: {first}{hint}") from exc
    return f"webhook {cfg.name} ({hook.webhook_id}) {done}: {', '.join(cfg.events)} -> {url}"
