"""An ASGI middleware around MLflow's scoring app: a model-version header, and capture off the request path.

The scoring app (MLflow's own, built by the pipeline layer) answers every request exactly as
`mlflow models serve` does; the middleware only adds `X-Model-Version` to each answer and, when
capture is on, copies the body and answer of each successful POST /invocations to the
CaptureWriter's queue after the answer is sent. The model and its app sit behind one attribute,
`served`, so that a later version can be swapped in without a restart.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from housing_mlops.serving.capture import CaptureWriter, Invocation

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

VERSION_HEADER = b"x-model-version"
SCORING_PATH = "/invocations"


@dataclass(frozen=True)
class Served:
    """What answers requests: MLflow's scoring app over one loaded model, and which model it is."""

    app: ASGIApp
    version: str  # the registry version (or the URI of a model outside the registry)
    uri: str  # what was loaded, e.g. models:/housing_price_model/3


class CaptureMiddleware:
    """ASGI middleware: `X-Model-Version` on every answer; captured /invocations when a writer is given."""

    def __init__(self, served: Served, writer: CaptureWriter | None) -> None:
        """Wrap `served.app`; `writer` None means capture is off."""
        self.served = served  # the one attribute to swap to serve another version
        self.writer = writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer through the served app; copy a successful scoring request to the writer."""
        served = self.served  # one version for the whole request, even if swapped meanwhile
        if scope["type"] == "lifespan":
            await served.app(scope, receive, self._flush_before_shutdown(send))
            return
        if scope["type"] != "http":
            await served.app(scope, receive, send)
            return
        capture = self.writer is not None and scope["path"] == SCORING_PATH and scope["method"] == "POST"
        body: list[bytes] = []
        answer: list[bytes] = []
        status = 0
        version = served.version.encode("latin-1", "replace")

        async def receive_copy() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body.append(message.get("body", b""))
            return message

        async def send_with_header(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (VERSION_HEADER, version)]}
            elif capture and message["type"] == "http.response.body":
                answer.append(message.get("body", b""))
            await send(message)

        await served.app(scope, receive_copy if capture else receive, send_with_header)
        if capture and status == 200 and self.writer is not None:
            try:
                headers = dict(scope.get("headers", []))
                content_type = headers.get(b"content-type", b"application/json").decode("latin-1")
                self.writer.submit(
                    Invocation(b"".join(body), content_type, b"".join(answer), served.version, served.uri)
                )
            except Exception as exc:  # capture never fails an answered request
                log.warning(f"inference capture: a request was not logged: {exc!r}")

    def _flush_before_shutdown(self, send: Send) -> Send:
        """`send` that writes what capture holds before the server reports its shutdown complete.

        uvicorn re-raises the SIGTERM/SIGINT it stopped on once it is done, so the process may end
        right after: this is the last moment the writer can still write.
        """

        async def send_after_flush(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete" and self.writer is not None:
                await asyncio.to_thread(self.writer.close)
            await send(message)

        return send_after_flush
