"""`make serve`: MLflow's own scoring app for the champion, wrapped by the capture middleware, on uvicorn.

The champion alias is resolved to a version once, at start: that version is loaded, named in the
`X-Model-Version` header and recorded in the inference log. The endpoints (/ping, /health,
/version, /invocations and their errors) are MLflow's `mlflow models serve`.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import mlflow
import uvicorn
from mlflow.pyfunc import scoring_server
from mlflow.tracking import MlflowClient

from housing_mlops.config.schema import Config
from housing_mlops.pipeline.capture import capture_dir
from housing_mlops.registry import store as registry
from housing_mlops.serving.capture import CaptureWriter
from housing_mlops.serving.middleware import CaptureMiddleware, Served

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Server:
    """The ASGI app to run and, when capture is on, its writer (started; close it after serving)."""

    app: CaptureMiddleware
    writer: CaptureWriter | None


def served_model(client: MlflowClient, cfg: Config, model_uri: str = "") -> Served:
    """MLflow's scoring app over the champion's version (or `model_uri`), loaded once."""
    if model_uri:
        uri, version = model_uri, model_uri
    else:
        name = cfg.registry.model_name
        version = str(client.get_model_version_by_alias(name, registry.CHAMPION).version)
        uri = f"models:/{name}/{version}"  # the version the alias named at start, even if it moves meanwhile
    model = mlflow.pyfunc.load_model(uri)
    return Served(scoring_server.init(model), version, uri)


def build(client: MlflowClient, cfg: Config, root: Path, model_uri: str = "") -> Server:
    """The app `make serve` runs: the served model, with capture as config and HOUSING_CAPTURE say."""
    served = served_model(client, cfg, model_uri)
    folder = capture_dir(cfg, root)
    writer = None
    if folder is not None:
        c = cfg.capture
        writer = CaptureWriter(folder, c.queue_size, c.flush_rows, c.flush_seconds).start()
        log.info(f"capturing inferences of version {served.version} to {folder}")
    return Server(CaptureMiddleware(served, writer), writer)


def serve(server: Server, host: str, port: int) -> None:
    """Run `server` with uvicorn until it is stopped (SIGINT/SIGTERM); capture writes what it holds at shutdown."""
    log.info(f"serving {server.app.served.uri} (version {server.app.served.version}) on http://{host}:{port}")
    try:
        uvicorn.run(server.app, host=host, port=port, workers=1)
    finally:
        if server.writer is not None:
            server.writer.close()
