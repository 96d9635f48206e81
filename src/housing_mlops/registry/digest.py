"""The digest of a fitted model: equal digests mean the same fitted parameters, bit for bit."""

import hashlib
import pickle
from typing import Any

MODEL_DIGEST_TAG = "model.sha256"  # version tag: model_digest of the registered Pipeline


def model_digest(model: Any, graph: bytes | None = None) -> str:
    """sha256 of the fitted Pipeline's pickle, and of the compiled graph when one is served.

    Not of the files MLflow writes: those carry creation times (MLmodel, the skops zip) and
    object ids, so two identical fits would never compare equal.
    """
    digest = hashlib.sha256(pickle.dumps(model, protocol=5))
    if graph is not None:
        digest.update(graph)
    return digest.hexdigest()
