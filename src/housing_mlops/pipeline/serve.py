"""`make serve`: MLflow's own scoring app for the champion, wrapped by the capture middleware, on uvicorn.

At start the champion alias is resolved to a version; that version is loaded, warmed with its
input example, named in the `X-Model-Version` header and recorded in the inference log. With
`serving.poll_s` set (and no `--model-uri`), a follower thread reads the alias every poll_s
seconds and swaps a new champion in without a restart (the rules are serving/follow.py's). The
endpoints (/ping, /health, /version, /invocations and their errors) are `mlflow models serve`'s.
"""

import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import mlflow
import uvicorn
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import scoring_server
from mlflow.tracking import MlflowClient

from housing_mlops.config.checks import masked_url
from housing_mlops.config.schema import Config
from housing_mlops.errors import WarmUpError
from housing_mlops.pipeline.capture import capture_dir
from housing_mlops.registry import store as registry
from housing_mlops.serving import follow
from housing_mlops.serving.capture import CaptureWriter
from housing_mlops.serving.middleware import CaptureMiddleware, Served

log = logging.getLogger(__name__)

# what the registry answers for an alias that is not set (SQL store: INVALID_PARAMETER_VALUE;
# REST: RESOURCE_DOES_NOT_EXIST): it answered, so the server is reachable
_NOT_SET = ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST")
_STOP_WAIT_S = 5.0  # for a poll in progress at shutdown; the thread is a daemon after that


@dataclass(frozen=True)
class Loaded:
    """A loaded, warmed version: what serves it, and its signature's inputs to compare the next one with."""

    served: Served
    inputs: follow.Columns


def load(uri: str, version: str) -> Loaded:
    """Load `uri`, warm it and build MLflow's scoring app over it.

    Warm: score the input example once, so that the first call's lazy set-up is paid here, not by
    the first client after a swap.
    """
    model = mlflow.pyfunc.load_model(uri)
    if model.input_example is not None:
        try:
            model.predict(model.input_example)
        except Exception as exc:
            raise WarmUpError(f"{uri} cannot score its own input example: {_short(exc)}") from exc
    schema = model.metadata.get_input_schema()
    inputs = None if schema is None else schema.to_dict()
    return Loaded(Served(scoring_server.init(model), version, uri), inputs)


def version_uri(name: str, version: str) -> str:
    """The URI of one version: what is served stays put while the alias moves."""
    return f"models:/{name}/{version}"


def served_model(client: MlflowClient, cfg: Config, model_uri: str = "") -> Loaded:
    """The champion's version (or `model_uri`), loaded and warmed."""
    if model_uri:
        return load(model_uri, model_uri)
    name = cfg.registry.model_name
    version = str(client.get_model_version_by_alias(name, registry.CHAMPION).version)
    return load(version_uri(name, version), version)


def _short(exc: Exception) -> str:
    return follow.short_error(str(exc) or type(exc).__name__)


class Follower:
    """Reads `champion` every poll_s seconds and swaps a new version into the middleware.

    A thread, not an asyncio task in the ASGI lifespan: loading and warming a version are
    seconds of blocking I/O and CPU (and MLflow's client is synchronous), which on the event loop
    would stall every request meanwhile; a thread needs no loop, and the swap it makes is one
    attribute assignment, which the loop sees whole. A daemon, so that a load in progress never
    holds the process at shutdown.
    """

    def __init__(
        self, client: MlflowClient, name: str, app: CaptureMiddleware, poll_s: float, inputs: follow.Columns
    ) -> None:
        """Follow `name`'s champion into `app`; `inputs`: the served version's signature inputs."""
        self.client = client
        self.name = name
        self.app = app
        self.poll_s = poll_s
        self.inputs = inputs  # of the served version: a new one must take the same
        self.watch = follow.Watch(served=app.served.version, seen=app.served.version)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="champion-follower", daemon=True)

    def start(self) -> "Follower":
        """Start polling (the first poll comes poll_s after start)."""
        self._thread.start()
        log.info(f"following champion of '{self.name}': read every {self.poll_s:g} s")
        return self

    def stop(self) -> None:
        """Stop polling; a poll in progress is given a few seconds to finish."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=_STOP_WAIT_S)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll()
            except Exception as exc:  # the thread outlives any surprise: serving goes on with what it has
                log.warning(f"following champion: a poll failed, still serving v{self.watch.served}: {_short(exc)}")

    def poll(self) -> None:
        """One read of the alias and what follows from it: nothing, a swap, or a refusal."""
        began = time.monotonic()
        watch = follow.begin(self.watch)
        registry_uri = masked_url(self.client.tracking_uri)  # what the lines name, no password
        try:
            champion: str | None = str(self.client.get_model_version_by_alias(self.name, registry.CHAMPION).version)
        except MlflowException as exc:
            if exc.error_code not in _NOT_SET:
                self._say(*follow.unreachable(watch, registry_uri, _short(exc)))
                return
            champion = None
        except Exception as exc:  # a network error MLflow did not wrap
            self._say(*follow.unreachable(watch, registry_uri, _short(exc)))
            return
        before = watch
        watch, action, lines = follow.answered(watch, registry_uri, champion)
        for line in lines:
            log.warning(line)
        if action is not follow.Action.LOAD or champion is None:
            self.watch = watch
            return
        try:
            loaded = load(version_uri(self.name, champion), champion)
        except WarmUpError as exc:  # the version itself is broken: loading it again would not help
            self._say(*follow.refused(watch, champion, str(exc)))
            return
        except Exception as exc:
            self._say(*follow.load_failed(watch, champion, _short(exc)))
            return
        why = follow.inputs_difference(self.inputs, loaded.inputs)
        if why is not None:
            self._say(*follow.refused(watch, champion, f"its inputs differ from the served version's: {why}"))
            return
        self.app.served = loaded.served  # the swap: requests in flight keep the Served they read
        self.inputs = loaded.inputs
        watch, line = follow.swapped(watch, champion, before.seen, before.seen_at, time.monotonic() - began)
        self.watch = watch
        log.info(line)

    def _say(self, watch: follow.Watch, line: str | None) -> None:
        self.watch = watch
        if line is not None:
            log.warning(line)


@dataclass(frozen=True)
class Server:
    """The ASGI app to run, its capture writer (started; closed after serving) and its follower (not started)."""

    app: CaptureMiddleware
    writer: CaptureWriter | None
    follower: Follower | None = None


def build(client: MlflowClient, cfg: Config, root: Path, model_uri: str = "") -> Server:
    """The app `make serve` runs: the served model, with capture as config and HOUSING_CAPTURE say.

    It follows champion every `serving.poll_s` unless that is null or a `model_uri` is served.
    """
    loaded = served_model(client, cfg, model_uri)
    folder = capture_dir(cfg, root)
    writer = None
    if folder is not None:
        c = cfg.capture
        writer = CaptureWriter(folder, c.queue_size, c.flush_rows, c.flush_seconds).start()
        log.info(f"capturing inferences of version {loaded.served.version} to {folder}")
    server = Server(CaptureMiddleware(loaded.served, writer), writer)
    poll_s = cfg.serving.poll_s
    if model_uri or poll_s is None:
        return server
    return replace(server, follower=Follower(client, cfg.registry.model_name, server.app, poll_s, loaded.inputs))


def serve(server: Server, host: str, port: int) -> None:
    """Run `server` with uvicorn until it is stopped (SIGINT/SIGTERM); capture writes what it holds at shutdown."""
    served = server.app.served
    log.info(f"serving {served.uri} (version {served.version}) on http://{host}:{port}")
    if server.follower is not None:
        server.follower.start()
    try:
        uvicorn.run(server.app, host=host, port=port, workers=1)
    finally:
        if server.follower is not None:
            server.follower.stop()
        if server.writer is not None:
            server.writer.close()
