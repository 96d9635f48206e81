"""Swapping `CaptureMiddleware.served` while a request is in flight: that request finishes on the
version it started on, in its header and in the inference log; the next one gets the new version.
Two plain ASGI apps stand in for MLflow's scoring app (the middleware only sees ASGI)."""

import asyncio
import json
from pathlib import Path

from housing_mlops.monitoring.inference_log import read_window
from housing_mlops.serving.capture import CaptureWriter
from housing_mlops.serving.middleware import ASGIApp, CaptureMiddleware, Message, Served

BODY = json.dumps({"dataframe_records": [{"median_income": 1.5}]}).encode()


def answering(prediction: float, started: asyncio.Event, release: asyncio.Event | None) -> ASGIApp:
    """An app that answers every request with `prediction`, after `release` is set when given."""

    async def app(scope: dict, receive, send) -> None:
        await receive()
        started.set()
        if release is not None:
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps({"predictions": [prediction]}).encode()})

    return app


async def invoke(app: CaptureMiddleware) -> tuple[dict[bytes, bytes], bytes]:
    """POST /invocations through `app`: (headers, body)."""
    scope = {
        "type": "http",
        "path": "/invocations",
        "method": "POST",
        "headers": [(b"content-type", b"application/json")],
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return dict(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


def test_a_request_in_flight_finishes_on_its_version_and_the_log_records_the_version_that_answered(
    tmp_path: Path,
) -> None:
    writer = CaptureWriter(tmp_path, 100, 100, 0.05).start()

    async def scenario() -> tuple[tuple[dict[bytes, bytes], bytes], tuple[dict[bytes, bytes], bytes]]:
        started_old, started_new, release = asyncio.Event(), asyncio.Event(), asyncio.Event()
        middleware = CaptureMiddleware(Served(answering(1.0, started_old, release), "1", "models:/m/1"), writer)
        in_flight = asyncio.create_task(invoke(middleware))
        await started_old.wait()  # v1 is computing its answer
        middleware.served = Served(answering(2.0, started_new, None), "2", "models:/m/2")
        after = await invoke(middleware)  # a request that arrives after the swap
        release.set()
        return await in_flight, after

    (old_headers, old_body), (new_headers, new_body) = asyncio.run(scenario())
    writer.close()
    assert (old_headers[b"x-model-version"], json.loads(old_body)) == (b"1", {"predictions": [1.0]})
    assert (new_headers[b"x-model-version"], json.loads(new_body)) == (b"2", {"predictions": [2.0]})
    rows = read_window(tmp_path, "1h").rows.sort_values("prediction")
    assert list(zip(rows["prediction"], rows["model_version"], rows["model_uri"], strict=True)) == [
        (1.0, "1", "models:/m/1"),
        (2.0, "2", "models:/m/2"),
    ]
